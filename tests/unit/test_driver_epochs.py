"""`lstmpipe train`'s epochs, logged by its driver from rank 0's reports (`pipeline.train.live`)."""

from mlflow.tracking import MlflowClient

from pipeline.track import TrackedRun
from pipeline.track.epochs import RERUN_TAG
from pipeline.train.live import DriverEpochs
from pipeline.train.spec import RUN_TAGS_KEY


def report(epoch: int, val_loss: float, **tags: str) -> dict:
    """Rank 0's report as the controller takes it: the epoch's metrics and the run's tags."""
    tags = {"lstmpipe.world_size": "2", "lstmpipe.worker_nodes": "n1,n2"} | tags
    return {"epoch": epoch, "train_loss": 2 * val_loss, "val_loss": val_loss, "lr": 0.01, RUN_TAGS_KEY: tags}


def test_each_epoch_lands_once_with_the_runs_tags(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    run = TrackedRun.start(uri, experiment="e", run_name="r", params={})
    follow = DriverEpochs(TrackedRun(uri, run.run_id))
    follow([report(0, 1.0), report(1, 0.5)])
    # the worker group restarted from checkpoint 1 on other nodes and trained epoch 1 again
    follow([report(1, 0.4, **{"lstmpipe.worker_nodes": "n1,n3", "lstmpipe.restored_from_epoch": "0"})])
    follow([report(2, 0.3, **{"lstmpipe.worker_nodes": "n1,n3", "lstmpipe.restored_from_epoch": "0"})])

    client = MlflowClient(uri)
    history = client.get_metric_history(run.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.3)]  # the first attempt's value
    got = client.get_run(run.run_id).data
    assert set(got.metrics) == {"train_loss", "val_loss", "lr"}  # no `epoch`, nothing of the tags
    assert got.tags["lstmpipe.worker_nodes"] == "n1,n3" and got.tags["lstmpipe.restored_from_epoch"] == "0"
    assert got.tags["lstmpipe.world_size"] == "2" and got.tags[RERUN_TAG] == "1"


def test_an_outage_keeps_the_epochs_until_the_server_answers(tmp_path, capsys):
    follow = DriverEpochs(TrackedRun("http://127.0.0.1:9", "0" * 32))  # port 9 (discard): connection refused
    follow([report(0, 1.0)])  # the run goes on
    assert follow.logger.pending_epochs == 1
    assert "training goes on, metrics are buffered" in capsys.readouterr().err
