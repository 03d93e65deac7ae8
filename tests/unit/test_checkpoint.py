"""Checkpoints: state_dicts round-trip; a malicious pickle is refused, never executed."""

import json
import pickle

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.errors import RunStateError
from pipeline.model.sequence_model import build_model
from pipeline.train import checkpoint


def test_round_trip(tmp_path):
    model = build_model(ModelConfig(hidden_size=4), input_size=2, output_size=1)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 5, 2)).sum().backward()
    opt.step()
    meta = checkpoint.CheckpointMeta(epoch=3, config_hash="abc", run_id="r1", metrics={"val_loss": 0.5})
    checkpoint.save(tmp_path, model=model, optimizer=opt, meta=meta)
    state = checkpoint.load(tmp_path)
    assert state.meta == meta
    fresh = build_model(ModelConfig(hidden_size=4), input_size=2, output_size=1)
    fresh.load_state_dict(state.model)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    torch.optim.Adam(fresh.parameters()).load_state_dict(state.optimizer)


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_malicious_pickle_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / checkpoint.MODEL_FILE, "wb") as f:
        pickle.dump({"model": _Evil(), "optimizer": None}, f)
    (tmp_path / checkpoint.META_FILE).write_text('{"epoch": 0, "config_hash": "x", "run_id": null}')
    write_manifest(tmp_path)  # even a checkpoint whose manifest matches is only weights
    with pytest.raises(RunStateError, match="cannot be loaded as weights .*never arbitrary pickles") as err:
        checkpoint.load(tmp_path)
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)
    assert not (tmp_path / "PWNED").exists()


def write_manifest(directory):
    manifest = {n: checkpoint._describe(directory / n) for n in (checkpoint.MODEL_FILE, checkpoint.META_FILE)}
    (directory / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))


def test_save_leaves_no_temporary_files_and_a_partial_directory_is_refused(tmp_path):
    model = build_model(ModelConfig(hidden_size=4), input_size=2, output_size=1)
    meta = checkpoint.CheckpointMeta(epoch=0, config_hash="abc", run_id=None)
    (tmp_path / "done").mkdir()
    checkpoint.save(tmp_path / "done", model=model, optimizer=None, meta=meta)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == sorted(
        [checkpoint.MANIFEST_FILE, checkpoint.META_FILE, checkpoint.MODEL_FILE]
    )
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / checkpoint.MODEL_FILE).write_bytes((tmp_path / "done" / checkpoint.MODEL_FILE).read_bytes()[:100])
    assert checkpoint.is_complete(tmp_path / "done") and not checkpoint.is_complete(partial)
    with pytest.raises(RunStateError, match="partial|not a complete checkpoint"):
        checkpoint.load(partial)


def saved(directory):
    model = build_model(ModelConfig(hidden_size=4), input_size=2, output_size=1)
    directory.mkdir()
    checkpoint.save(directory, model=model, optimizer=None, meta=checkpoint.CheckpointMeta(0, "abc", None))
    return directory


def test_a_truncated_model_beside_its_meta_is_refused(tmp_path):
    """meta.json is there, model.pt was cut short (a copy that stopped): the manifest's size tells."""
    ckpt = saved(tmp_path / "c")
    data = (ckpt / checkpoint.MODEL_FILE).read_bytes()
    (ckpt / checkpoint.MODEL_FILE).write_bytes(data[: len(data) // 2])
    assert not checkpoint.is_complete(ckpt)
    with pytest.raises(RunStateError, match="not a complete checkpoint"):
        checkpoint.load(ckpt)


def test_a_changed_file_of_the_same_size_fails_its_checksum(tmp_path):
    ckpt = saved(tmp_path / "c")
    data = bytearray((ckpt / checkpoint.MODEL_FILE).read_bytes())
    data[-30] ^= 0xFF
    (ckpt / checkpoint.MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(RunStateError, match="model.pt does not match its checksum"):
        checkpoint.load(ckpt)


@pytest.mark.parametrize(
    "meta", ["{not json", '{"epoch": 0}', '{"epoch": 0, "config_hash": "x", "run_id": null, "x": 1}']
)
def test_a_meta_file_that_is_not_ours_is_one_sentence(tmp_path, meta):
    ckpt = saved(tmp_path / "c")
    (ckpt / checkpoint.META_FILE).write_text(meta)
    write_manifest(ckpt)
    with pytest.raises(RunStateError, match="does not describe a checkpoint"):
        checkpoint.load_meta(ckpt)


def test_a_checkpoint_of_another_run_or_config_is_not_restored():
    meta = checkpoint.CheckpointMeta(epoch=3, config_hash="abc", run_id="run-a")
    checkpoint.check_belongs(meta, run_id="run-a", config_hash="abc", where="e3")
    for run_id, config_hash in (("run-b", "abc"), ("run-a", "other")):
        with pytest.raises(RunStateError, match="belongs to run run-a .*not to this run"):
            checkpoint.check_belongs(meta, run_id=run_id, config_hash=config_hash, where="e3")
