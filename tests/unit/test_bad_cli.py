"""The corpus of bad configs, checkpoints and CLI arguments (tests/data/bad/cli_cases.yaml): each
exits 2 with one sentence naming the problem, without a traceback, and writes nothing."""

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.cli.main import run_command
from pipeline.config import validate
from pipeline.model.sequence_model import model_for
from pipeline.tasks import DataInfo
from pipeline.tasks.regression import RegressionInfo
from pipeline.train import checkpoint

SMOKE = Path(__file__).parents[2] / "conf" / "smoke.yaml"
CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "bad" / "cli_cases.yaml").read_text())


def alias_bomb() -> str:
    """Nine levels of nine aliases: 9**8 values once expanded, from 8 lines."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
    return "\n".join([*lines, "model: {hidden_size: *a7}"]) + "\n"


def a_checkpoint(directory: Path, *, kind: str) -> None:
    """A real checkpoint of a tiny adding-problem model, then damaged as `kind` says."""
    cfg = validate({"model": {"hidden_size": 4}})
    own = RegressionInfo(target_mean=[0.5])
    info = DataInfo(task="regression", input_size=2, output_size=1, target="float", max_len=10, task_info=own)
    meta = checkpoint.CheckpointMeta(
        epoch=0, config_hash=cfg.hash(), run_id=None, config=cfg.model_dump(mode="json"), info=info.as_dict()
    )
    directory.mkdir(parents=True)
    if kind == "pickle":  # not a torch weights file at all
        (directory / checkpoint.MODEL_FILE).write_bytes(pickle.dumps({"model": print}))
        (directory / checkpoint.META_FILE).write_text(json.dumps(meta.__dict__))
        return write_manifest(directory)
    model = model_for(cfg.model, info)
    checkpoint.save(directory, model=model, optimizer=None, meta=meta)
    if kind == "truncated":
        data = (directory / checkpoint.MODEL_FILE).read_bytes()
        (directory / checkpoint.MODEL_FILE).write_bytes(data[: len(data) // 3])
        return
    raw = json.loads((directory / checkpoint.META_FILE).read_text())
    if kind == "wrong_shapes":
        torch.save(
            {"model": {k: torch.zeros(3) for k in model.state_dict()}, "optimizer": None}, directory / "model.pt"
        )
    elif kind == "huge_input":
        raw["info"]["input_size"] = 10**9
    elif kind == "extra_key":
        raw["surprise"] = 1
    (directory / checkpoint.META_FILE).write_text(json.dumps(raw))
    write_manifest(directory)


def write_manifest(directory: Path) -> None:
    names = (checkpoint.MODEL_FILE, checkpoint.META_FILE)
    manifest = {n: checkpoint._describe(directory / n) for n in names}
    (directory / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))


def write_files(root: Path, files: dict) -> None:
    for rel, spec in files.items():
        path = root / rel
        if spec in ("pickle", "truncated", "wrong_shapes", "huge_input", "extra_key"):
            a_checkpoint(path, kind=spec)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec == "bomb":
            path.write_text(alias_bomb())
        elif "hex" in spec:
            path.write_bytes(bytes.fromhex(spec["hex"]))
        elif "utf16" in spec:
            path.write_bytes(spec["utf16"].encode("utf-16"))
        else:
            path.write_text(spec["text"])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_sentence(name, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    write_files(tmp_path, case.get("files", {}))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = run_command([str(a).replace("{smoke}", str(SMOKE)) for a in case["args"]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(case["error"], " ".join(err.split())), err
    if err.startswith("error: "):
        assert len(err.strip().splitlines()) == 1 and len(err) < 600, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # nothing written: no mlflow.db, no run directory, no cluster state
