"""Checkpoints: state_dicts round-trip; a malicious pickle is refused, never executed."""

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
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_save_leaves_no_temporary_files_and_a_partial_directory_is_refused(tmp_path):
    model = build_model(ModelConfig(hidden_size=4), input_size=2, output_size=1)
    meta = checkpoint.CheckpointMeta(epoch=0, config_hash="abc", run_id=None)
    (tmp_path / "done").mkdir()
    checkpoint.save(tmp_path / "done", model=model, optimizer=None, meta=meta)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [checkpoint.META_FILE, checkpoint.MODEL_FILE]
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / checkpoint.MODEL_FILE).write_bytes((tmp_path / "done" / checkpoint.MODEL_FILE).read_bytes()[:100])
    assert checkpoint.is_complete(tmp_path / "done") and not checkpoint.is_complete(partial)
    with pytest.raises(RunStateError, match="partial|not a complete checkpoint"):
        checkpoint.load(partial)
