"""--resume after a process was killed while Ray Train rewrote its checkpoint list: the damaged list is
moved aside and the workers start from the latest complete checkpoint (no Ray)."""

import json

import pytest
from torch import nn

from pipeline import config
from pipeline.train import checkpoint, snapshot
from pipeline.train.driver import FitOutcome, with_best_of


def _run_dir(tmp_path, *, snapshot_text: str | None):
    run = tmp_path / "r1"
    run.mkdir()
    for epoch in (0, 1):
        (run / f"epoch_{epoch:04d}").mkdir()
        meta = checkpoint.CheckpointMeta(epoch=epoch, config_hash="h", run_id="r")
        checkpoint.save(run / f"epoch_{epoch:04d}", model=nn.Linear(1, 1), optimizer=None, meta=meta)
    (run / "epoch_0002").mkdir()  # a writer killed mid-save: no manifest
    (run / "epoch_0002" / "model.pt").write_bytes(b"half")
    if snapshot_text is not None:
        (run / snapshot.SNAPSHOT_FILE).write_text(snapshot_text)
    return run


@pytest.mark.parametrize("damage", ["", '{"checkpoint_results": [{"checkpoint_dir_na'])
def test_a_damaged_checkpoint_list_is_moved_aside_and_the_latest_complete_checkpoint_returned(tmp_path, damage):
    run = _run_dir(tmp_path, snapshot_text=damage)
    recovered = snapshot.recover(str(tmp_path), "r1")
    assert recovered.checkpoint == str(run / "epoch_0001")  # not the incomplete epoch_0002
    assert not (run / snapshot.SNAPSHOT_FILE).exists()  # Ray starts the run's list anew
    assert open(recovered.moved_to).read() == damage  # kept for a post-mortem


@pytest.mark.parametrize("state", [None, json.dumps({"ray_version": "2.60.0", "checkpoint_results": []})])
def test_a_readable_or_absent_list_is_left_to_ray(tmp_path, state):
    run = _run_dir(tmp_path, snapshot_text=state)
    assert snapshot.recover(str(tmp_path), "r1") is None
    assert (run / snapshot.SNAPSHOT_FILE).exists() == (state is not None)


def test_without_a_complete_checkpoint_the_run_starts_over(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    (run / snapshot.SNAPSHOT_FILE).write_text("")
    assert snapshot.recover(str(tmp_path), "r1").checkpoint is None


def test_the_checkpoint_a_run_restarted_from_stays_its_best_if_nothing_beat_it():
    cfg = config.validate({})
    trained = FitOutcome(best_checkpoint="e3", best_metrics={"val_loss": 0.5}, run_path="r", history=[{}] * 4)
    start = FitOutcome(best_checkpoint="e1", best_metrics={"val_loss": 0.2}, run_path="r", history=[{}] * 2)
    best = with_best_of(cfg, trained, start)
    assert best.best_checkpoint == "e1" and best.history == trained.history  # the history is still the whole run
    assert with_best_of(cfg, start, trained).best_checkpoint == "e1"
