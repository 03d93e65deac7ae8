"""`train` on 2 Ray Train workers, tracked in MLflow; resume continues the same run."""

import json

import numpy as np
import pytest
from helpers import load_served, train_and_serve
from typer.testing import CliRunner

from pipeline import config
from pipeline.cli.main import app
from pipeline.errors import ConfigError, RunStateError
from pipeline.train.driver import run_training
from pipeline.train.precision import cpu_supports_bf16

PRECISION = "bf16" if cpu_supports_bf16() else "auto"


def _check_telemetry(client, run_id, tmp_path):
    """telemetry.enabled: rank 0 logged the probe's table and plots for the first and last epoch."""
    import pyarrow.parquet as pq

    tables = [a.path for a in client.list_artifacts(run_id, "telemetry")]
    assert tables == ["telemetry/epoch_0000.parquet", "telemetry/epoch_0001.parquet"]
    table = pq.read_table(client.download_artifacts(run_id, tables[1], str(tmp_path)))
    quantities = set(table.column("quantity").to_pylist())
    assert {"gate:input", "gate:forget", "gate:output", "cell_norm", "hidden_norm", "grad_norm"} == quantities
    assert set(table.column("t").to_pylist()) == set(range(8)) and set(table.column("epoch").to_pylist()) == {1}
    plots = {a.path.rsplit("/", 1)[1]: a.file_size for a in client.list_artifacts(run_id, "plots/telemetry")}
    for epoch in ("0000", "0001"):
        for kind in ("gate_heatmaps", "gate_bands", "state_norms", "gradient_flow"):
            assert plots[f"epoch_{epoch}_{kind}.png"] > 5000  # non-empty PNGs
    steps = [m.step for m in client.get_metric_history(run_id, "telemetry_s")]
    assert sorted(steps) == [0, 1]


def test_train_two_workers_tracks_everything(tiny_raw, splits, mlflow_client, tmp_path):
    # bf16 autocast: the GPU's mixed-precision path (train.precision), run on CPU through real workers
    # where the CPU has bf16 kernels; elsewhere `auto`, which picks fp32 there
    cfg = config.validate(
        {
            **tiny_raw,
            "train": {**tiny_raw["train"], "precision": PRECISION},
            "tracking": {**tiny_raw["tracking"], "register_as": "tiny-train", "system_metrics_s": 1.0},
            "telemetry": {"enabled": True, "probe_size": 8},
        }
    )
    summary = run_training(cfg, name="t-basic", splits=splits)

    assert summary.status == "FINISHED"
    run = mlflow_client.get_run(summary.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "t-basic"
    assert run.data.params["model.hidden_size"] == "8" and run.data.params["train.workers"] == "2"
    assert run.data.tags["lstmpipe.world_size"] == "2"  # logged by rank 0 of a 2-worker group
    system = {k for k in run.data.metrics if k.startswith("system/node_0/")}  # one node: its local rank 0 sampled it
    assert {"system/node_0/cpu_utilization_percentage", "system/node_0/system_memory_usage_megabytes"} <= system
    (inp,) = run.inputs.dataset_inputs  # lineage: the built-in, its parameters' digest, the split sizes
    assert inp.tags[0].value == "training" and inp.dataset.source_type == "code"
    assert json.loads(inp.dataset.profile)["split_sizes"] == splits.info.num_rows
    assert "x" in json.loads(inp.dataset.schema)["mlflow_colspec"][0]["name"]
    history = mlflow_client.get_metric_history(summary.run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 1]
    assert {"train_loss", "val_loss", "val_mse", "test_mse", "baseline_test_mse"} <= set(run.data.metrics)
    assert run.data.params["train.precision"] == PRECISION
    speed = mlflow_client.get_metric_history(summary.run_id, "train_seq_per_s")  # every epoch's throughput, all workers
    assert sorted(m.step for m in speed) == [0, 1] and all(m.value > 0 for m in speed)
    assert summary.metrics["baseline_test_mse"] > 0.05
    artifacts = [a.path for a in mlflow_client.list_artifacts(summary.run_id)]
    assert "config.yaml" in artifacts
    assert [a.path for a in mlflow_client.list_artifacts(summary.run_id, "plots")] == [
        "plots/learning_curves.png",
        "plots/telemetry",
    ]
    _check_telemetry(mlflow_client, summary.run_id, tmp_path)

    model = load_served(cfg.tracking.uri, "models:/tiny-train/1")
    assert model.input_example.shape == (4, 8, 2)  # logged with the model, with its signature
    assert np.asarray(model.predict(model.input_example)).shape == (4, 1)
    example = np.random.default_rng(0).random((3, 8, 2), dtype=np.float32)  # any batch size
    assert np.asarray(model.predict(example)).shape == (3, 1)


def test_reusing_a_name_without_resume_is_refused(tiny_cfg, splits):
    from pipeline.train import run_state as runs

    storage = runs.resolve_storage(tiny_cfg.train.storage_path)  # a run named t-taken exists
    runs.write_state(storage, "t-taken", runs.RunState(run_id="0" * 32, config_hash=tiny_cfg.hash(), kind="train"))
    with pytest.raises(RunStateError, match="--name t-taken --resume"):
        run_training(tiny_cfg, name="t-taken", splits=splits)


def test_cli_train_writes_summary_json(tiny_raw, workdir, ray_session, tmp_path, mlflow_client):
    """Also the recipe on real workers: adamw on a cosine schedule, and early stopping that cannot see
    an improvement (min_delta 1000) ends a 3-epoch run after epoch 2 (patience 1)."""
    from pipeline.train.recipe import lr_at

    conf = tmp_path / "tiny.yaml"
    conf.write_text(json.dumps(tiny_raw))  # JSON is YAML
    out = tmp_path / "summary.json"
    recipe = ["train.epochs=3", "train.optimizer=adamw", "train.weight_decay=0.01", "train.schedule=cosine"]
    recipe += ["train.early_stopping.patience=1", "train.early_stopping.min_delta=1000.0"]
    sets = [arg for item in recipe for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["train", "-c", str(conf), *sets, "--name", "t-cli", "--summary-json", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["status"] == "FINISHED" and summary["experiment"] == "it"
    assert {"val_loss", "val_mse", "test_mse", "baseline_test_mse"} <= set(summary["metrics"])
    assert summary["model_uri"].startswith("models:/") and summary["checkpoint"]
    assert "mlflow ui --backend-store-uri sqlite:///" in result.output

    assert summary["metrics"]["stopped_epoch"] == 2 and summary["metrics"]["max_epochs"] == 3
    assert "early stopping: stopped after epoch 2 of 3" in result.output
    run = mlflow_client.get_run(summary["run_id"])
    assert run.data.tags["lstmpipe.stopped_early_after_epoch"] == "2"
    assert sorted(m.step for m in mlflow_client.get_metric_history(summary["run_id"], "val_loss")) == [0, 1]
    cfg = config.validate(config.apply_overrides(tiny_raw, recipe))
    rates = {m.step: m.value for m in mlflow_client.get_metric_history(summary["run_id"], "lr")}
    assert rates == pytest.approx({0: lr_at(0, [], cfg.train), 1: lr_at(1, [], cfg.train)})
    assert rates[1] < rates[0]  # the schedule reached the workers


def test_more_workers_than_cpus_fails_before_training(tiny_cfg, splits):
    too_many = config.validate({**tiny_cfg.model_dump(), "train": {**tiny_cfg.train.model_dump(), "use_gpu": True}})
    with pytest.raises(ConfigError, match="train.workers=2 needs 2 GPUs but the Ray cluster has 0"):
        run_training(too_many, name="t-gpu", splits=splits)


def test_greff_variant_bidirectional_on_two_workers(ray_session, tiny_raw, tmp_path):
    """A custom cell (CIFG), stacked and bidirectional, through DDP on 2 workers, served from pt2."""
    import numpy as np

    raw = {
        **tiny_raw,
        "model": {"cell": "cifg", "hidden_size": 8, "num_layers": 2, "bidirectional": True},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-cifg"},
    }
    trained = train_and_serve(raw, name="t-cifg")
    assert np.isfinite(trained.summary.metrics["test_mse"]) and trained.summary.metrics["best_epoch"] in (0, 1)
    assert np.asarray(trained.served.predict(trained.served.input_example)).shape == (4, 1)


def test_xlstm_cells_train_through_ddp_and_serve(ray_session, tiny_raw):
    """An mLSTM stack (2 layers, 2 heads) through DDP on 2 workers (DDP fails if a parameter gets no
    gradient), then exported and served from MLflow; the sLSTM's equations and export are unit-tested."""
    raw = {
        **tiny_raw,
        "model": {"cell": "mlstm", "hidden_size": 8, "heads": 2, "num_layers": 2},
        "train": {**tiny_raw["train"], "epochs": 1},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-mlstm"},
    }
    trained = train_and_serve(raw, name="t-mlstm")
    assert np.isfinite(trained.summary.metrics["test_mse"])
    assert np.asarray(trained.served.predict(trained.served.input_example)).shape == (4, 1)


@pytest.mark.skipif(cpu_supports_bf16(), reason="this CPU has bf16 kernels")
def test_bf16_on_a_cpu_without_bf16_kernels_is_refused_by_the_worker(tiny_raw, splits, mlflow_client):
    """The check runs where the model runs (a worker), before its first step: one sentence, exit 2, run FAILED."""
    cfg = config.validate({**tiny_raw, "train": {**tiny_raw["train"], "precision": "bf16", "workers": 1}})
    with pytest.raises(
        ConfigError, match=r"train.precision=bf16 needs bf16 kernels .* use train.precision: fp32 or auto"
    ):
        run_training(cfg, name="t-bf16", splits=splits)
    exp = mlflow_client.get_experiment_by_name("it")
    run = mlflow_client.search_runs([exp.experiment_id], "attributes.run_name = 't-bf16'")[0]
    assert run.info.status == "FAILED"


def test_a_resume_continues_the_same_run_and_its_seeded_data_order(tiny_raw, splits, mlflow_client, capsys):
    """Training on CPU is bitwise deterministic for a seed, so the losses fingerprint the order the
    sequences were seen in (a new order every epoch: tests/unit/test_shuffle.py). A run resumed after
    epoch 1 must continue the same MLflow run and see epochs 2 and 3 in the same order as a run that
    was never interrupted; also when it was stopped while Ray Train rewrote its checkpoint list (Ray
    then refuses the run): the list is moved aside and the workers start from the latest complete
    checkpoint, a half-written one ignored."""
    from pathlib import Path

    raw = {**tiny_raw, "train": {**tiny_raw["train"], "epochs": 4, "shard_cache_mb": 0}}  # the streamed path
    whole = run_training(config.validate(raw), name="t-order-whole", splits=splits)
    short = {**raw, "train": {**raw["train"], "epochs": 2}}
    first = run_training(config.validate(short), name="t-order-resumed", splits=splits)
    run_dir = Path(raw["train"]["storage_path"]) / "t-order-resumed"
    partial = run_dir / "epoch_0007"  # a writer killed mid-save
    partial.mkdir()
    (partial / "model.pt").write_bytes(b"\x80\x02half a checkpoint")
    (run_dir / "checkpoint_manager_snapshot.json").write_text('{"checkpoint_results": [{"check')  # cut short
    capsys.readouterr()
    resumed = run_training(config.validate(raw), name="t-order-resumed", resume=True, splits=splits)
    assert "Ray Train's checkpoint list was damaged" in capsys.readouterr().err
    assert list(run_dir.glob("checkpoint_manager_snapshot.json.damaged-*"))

    assert resumed.run_id == first.run_id
    steps = [m.step for m in mlflow_client.get_metric_history(first.run_id, "val_loss")]
    assert sorted(steps) == [0, 1, 2, 3]  # epochs 2-3 only: no duplicates, none missing; the partial dir was ignored
    run = mlflow_client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["lstmpipe.restored_from_epoch"] == "1"

    def losses(run_id):
        return [m.value for m in sorted(mlflow_client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)]

    assert len(losses(whole.run_id)) == 4 and losses(whole.run_id) == losses(resumed.run_id)


def test_train_actors_start_without_runtime_envs_on_a_ray_of_our_own(ray_session, tmp_path):
    """On the session's Ray (started by connect, as `lstmpipe train` starts its own), the worker runs
    without the runtime env Ray Train would give it (and its controller), so both can start on idle
    pooled workers, and still has the controller's settings, inherited from the node."""
    import ray
    import ray.train.torch

    from pipeline.ray_compat import actors as ray_actors

    assert ray_actors.on_own_ray()

    def report_runtime_env(config):  # defined here: Ray pickles it by value (tests are not importable there)
        import os

        keys = ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC")
        env = {k: os.environ.get(k) for k in keys}
        with open(config["out"], "w") as f:
            json.dump({"runtime_env": dict(ray.get_runtime_context().runtime_env), "env": env}, f)

    out = tmp_path / "seen.json"
    trainer = ray.train.torch.TorchTrainer(
        report_runtime_env,
        train_loop_config={"out": str(out)},
        scaling_config=ray.train.ScalingConfig(num_workers=1),
        run_config=ray.train.RunConfig(name="pooled", storage_path=str(tmp_path)),
    )
    ray_actors.use_our_controller(trainer, env="inherited")
    trainer.fit()
    seen = json.loads(out.read_text())
    assert "env_vars" not in seen["runtime_env"], seen
    assert seen["env"] == {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.05", "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC": "0"}
