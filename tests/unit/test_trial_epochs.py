"""A sweep's trials' epochs, logged by the sweep driver as Tune receives them (`pipeline.tune.epochs`)."""

import pickle
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from pipeline.track import TRIAL_TAG, SweepRun, TrackedRun
from pipeline.track.epochs import RERUN_TAG
from pipeline.tune.epochs import TrialEpochs, epoch_metrics


@dataclass
class Trial:
    trial_id: str


def result(epoch: int, val_loss: float, trial_id: str = "t1") -> dict:
    """A Tune result as the sweep driver receives it: rank 0's report plus what Train and Tune add."""
    reported = {"epoch": epoch, "train_loss": 2 * val_loss, "val_loss": val_loss, "lr": 0.01, "train_epoch_s": 0.2}
    return reported | {
        "checkpoint_path": f"/runs/t/epoch_{epoch:04d}",
        "checkpoint_dir_name": None,
        "should_checkpoint": False,
        "done": False,
        "training_iteration": epoch + 1,
        "trial_id": trial_id,
        "date": "2026-12-07_16-30-00",
        "timestamp": 1796660000,
        "time_this_iter_s": 0.5,
        "time_total_s": 0.5 * (epoch + 1),
        "pid": 4242,
        "hostname": "h",
        "node_ip": "127.0.0.1",
        "config": {"model.hidden_size": 8},
        "time_since_restore": 0.5,
        "iterations_since_restore": epoch + 1,
        "experiment_tag": "0_hidden_size=8",
    }


def test_epoch_metrics_are_what_rank_0_reported():
    assert epoch_metrics(result(3, 0.5)) == {
        "epoch": 3,
        "train_loss": 1.0,
        "val_loss": 0.5,
        "lr": 0.01,
        "train_epoch_s": 0.2,
    }


def _sweep(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    parent = SweepRun.start(uri, experiment="e", run_name="sweep", params={})
    return uri, parent


def _trial_run(uri, parent, trial_id):
    return TrackedRun.start(
        uri, experiment="e", run_name=trial_id, params={}, tags={TRIAL_TAG: trial_id}, parent=parent
    )


def test_each_trials_epochs_land_once_in_its_own_run(tmp_path):
    uri, parent = _sweep(tmp_path)
    first = _trial_run(uri, parent, "t1")
    epochs = TrialEpochs(parent)
    for epoch in range(3):
        epochs.on_trial_result(epoch, [], Trial("t1"), result(epoch, 1.0 / (epoch + 1)))
    # its worker group restarted from checkpoint 1 and trained epoch 2 again: logged once, tagged a rerun
    epochs.on_trial_result(3, [], Trial("t1"), result(2, 0.3))
    # a trial whose run the sweep does not see yet (it opens it before training): kept until it does
    epochs.on_trial_result(4, [], Trial("t2"), result(0, 0.9, trial_id="t2"))
    second = _trial_run(uri, parent, "t2")
    assert epochs.finish(wait_s=0)

    client = MlflowClient(uri)
    history = client.get_metric_history(first.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]  # the first attempt's value
    run = client.get_run(first.run_id)
    assert set(run.data.metrics) == {"train_loss", "val_loss", "lr", "train_epoch_s"}  # nothing of Tune's
    assert run.data.tags[RERUN_TAG] == "2"
    assert [m.step for m in client.get_metric_history(second.run_id, "val_loss")] == [0]
    assert not client.get_metric_history(parent.run_id, "val_loss")


def test_an_outage_keeps_the_epochs_until_the_server_answers(tmp_path, capsys):
    epochs = TrialEpochs(SweepRun("http://127.0.0.1:9", "0" * 32))  # port 9 (discard): connection refused
    epochs.on_trial_result(0, [], Trial("t1"), result(0, 1.0))  # Tune's loop goes on
    assert not epochs.finish(wait_s=0)
    uri, parent = _sweep(tmp_path)  # the server is back (here: a store that answers)
    run = _trial_run(uri, parent, "t1")
    epochs.parent = parent
    assert epochs.finish(wait_s=0)
    assert [m.step for m in MlflowClient(uri).get_metric_history(run.run_id, "val_loss")] == [0]


def test_the_copy_tune_pickles_into_the_sweep_directory_holds_no_uri_and_logs_nothing(tmp_path):
    uri, parent = _sweep(tmp_path)
    run = _trial_run(uri, parent, "t1")
    blob = pickle.dumps(TrialEpochs(parent))
    assert str(tmp_path).encode() not in blob
    restored = pickle.loads(blob)
    restored.on_trial_result(0, [], Trial("t1"), result(0, 1.0))
    assert restored.finish(wait_s=0)
    assert not MlflowClient(uri).get_metric_history(run.run_id, "val_loss")


def test_tunes_loop_only_queues_the_epoch_a_thread_of_its_own_logs_it(tmp_path, monkeypatch):
    import threading

    uri, parent = _sweep(tmp_path)
    run = _trial_run(uri, parent, "t1")
    epochs = TrialEpochs(parent)
    sent_from = []
    send = epochs._send

    def recorded(trial_id):
        sent_from.append(threading.current_thread())
        return send(trial_id)

    monkeypatch.setattr(epochs, "_send", recorded)
    for epoch in range(3):
        epochs.on_trial_result(epoch, [], Trial("t1"), result(epoch, 1.0))
    assert epochs.finish(wait_s=0)
    main = threading.current_thread()
    during_fit = sent_from[: sent_from.index(main)] if main in sent_from else sent_from
    assert during_fit and main not in during_fit  # Tune's loop (this thread) never waited on the store
    assert [m.step for m in MlflowClient(uri).get_metric_history(run.run_id, "val_loss")] == [0, 1, 2]
