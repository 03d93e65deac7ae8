"""`classify` through the same path: ragged sequences packed per batch, labels mapped and saved."""

import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import load_served, own_output, post

from pipeline import config
from pipeline.data.ingest import load_splits
from pipeline.errors import DataError
from pipeline.train.driver import run_training


def _ragged_labelled(path, *, n=240, seed=0, test_label=None):
    """Two classes told apart by the sign of the mean; lengths 3..12; string labels; a split column."""
    rng = np.random.default_rng(seed)
    rows, labels, splits = [], [], []
    for i in range(n):
        cls = i % 2
        length = int(rng.integers(3, 13))
        rows.append((rng.normal(1.0 if cls else -1.0, 0.5, size=(length, 2))).tolist())
        labels.append("up" if cls else "down")
        splits.append("test" if i % 5 == 0 else "train")
    if test_label is not None:
        labels[0] = test_label  # row 0 is in the test split
    pq.write_table(pa.table({"seq": rows, "label": labels, "part": splits}), path)


def test_classify_ragged_string_labels(ray_session, tiny_raw, tmp_path, mlflow_client, serve_port, join_env):
    _ragged_labelled(tmp_path / "mine.parquet")
    raw = {
        **tiny_raw,
        "task": "classify",
        "data": {
            "source": str(tmp_path / "mine.parquet"),
            "columns": {"sequence": "seq", "target": "label"},
            "split_column": "part",
        },
        "train": {**tiny_raw["train"], "epochs": 3},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-classify"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    assert splits.info.task_info.classes == ["down", "up"] and splits.info.output_size == 2
    assert splits.info.num_rows["test"] == 48 and splits.info.max_len == 12

    summary = run_training(cfg, name="c-ragged", splits=splits)
    m = summary.metrics
    assert {
        "val_loss",
        "val_accuracy",
        "test_accuracy",
        "test_macro_f1",
        "baseline_test_accuracy",
        "baseline_test_macro_f1",
    } <= set(m)
    assert m["test_accuracy"] > 0.9 > m["baseline_test_accuracy"]  # an easy problem, learned
    steps = [x.step for x in mlflow_client.get_metric_history(summary.run_id, "val_accuracy")]
    assert sorted(steps) == [0, 1, 2]
    assert "data_info.json" in [a.path for a in mlflow_client.list_artifacts(summary.run_id)]
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    assert set(plots) == {"plots/learning_curves.png", "plots/confusion_matrix.png"} and min(plots.values()) > 1000

    model = load_served(cfg.tracking.uri, "models:/tiny-classify/1")
    example = model.input_example  # ragged: NaN after each sequence's end
    assert np.isnan(example).any()
    logits = np.asarray(model.predict(example))
    assert logits.shape == (len(example), 2) and np.isfinite(logits).all()
    assert model.metadata.metadata["data_info"]["task_info"]["classes"] == ["down", "up"]

    # `lstmpipe serve` (the command, joining the session's Ray and Serve): rows of ragged sequences
    # get predict's class and probability; Ctrl-C removes the application
    from pipeline.serve.inputs import DataChoice
    from pipeline.serve.predict import predict

    source = DataChoice(str(tmp_path / "mine.parquet"))
    predict("models:/tiny-classify/1", source, out=tmp_path / "p", tracking_uri=cfg.tracking.uri)
    expected = pd.read_parquet(tmp_path / "p").head(20)
    sequences = pq.read_table(tmp_path / "mine.parquet").column("seq").to_pylist()[:20]
    command = [sys.executable, "-m", "pipeline.cli", "serve", "-m", "models:/tiny-classify/1", "--route", "/cls"]
    # --port: another than the running Serve's, which keeps its own (the address printed says which)
    log = (tmp_path / "serve.err").open("w")  # a file, not a pipe nobody drains while the server runs
    server = subprocess.Popen(
        [*command, "--port", str(serve_port + 1), "--replica-cpus", "0.5", "--tracking-uri", cfg.tracking.uri],
        cwd=tmp_path,
        env=join_env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        lines = [server.stdout.readline() for _ in range(2)]  # a classifier has no stream: no second address
        assert lines[1] == "Ctrl-C to stop\n", lines
        assert lines[0] == f"serving models:/tiny-classify/1 (classify) at http://127.0.0.1:{serve_port}/cls\n", lines
        url = f"http://127.0.0.1:{serve_port}/cls"
        status, got = post(url, {"rows": [{"x": s} for s in sequences]})
        assert status == 200, got
        answers = pd.DataFrame(got["predictions"])
        assert answers["predicted"].tolist() == expected["predicted"].tolist()
        assert np.allclose(answers["probability"], expected["probability"], atol=1e-5)
        assert post(url, {"rows": [{"x": [[1.0, float("inf")]]}]})[0] == 400
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=60)
        log.close()
    assert server.returncode == 0 and "stopped" in out, (tmp_path / "serve.err").read_text()[-2000:]
    from ray import serve

    assert "cls" not in serve.status().applications


def test_label_unseen_in_training_is_a_data_error(ray_session, tiny_raw, tmp_path):
    _ragged_labelled(tmp_path / "bad.parquet", test_label="sideways")
    raw = {
        **tiny_raw,
        "task": "classify",
        "data": {
            "source": str(tmp_path / "bad.parquet"),
            "columns": {"sequence": "seq", "target": "label"},
            "split_column": "part",
        },
    }
    with pytest.raises(
        DataError,
        match=r"bad.parquet: label column .label. has label\(s\) \['sideways'\] not seen in the training split",
    ):
        load_splits(config.validate(raw))


def test_builtin_digits_as_row_sequences(ray_session, tiny_raw):
    raw = {**tiny_raw, "task": "classify", "data": {"source": "digits", "cache_dir": tiny_raw["data"]["cache_dir"]}}
    info = load_splits(config.validate(raw)).info
    assert (info.input_size, info.max_len, info.output_size) == (8, 8, 10)
    assert info.task_info.classes == [str(d) for d in range(10)]


def test_cli_bad_data_exits_2_with_one_sentence(tmp_path, join_env):
    """A CLI process (joining the session's Ray): bad data ends in exit 2 and one sentence, no traceback."""
    import subprocess
    import sys

    _ragged_labelled(tmp_path / "bad.parquet", test_label="sideways")
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "task: classify\n"
        f"data: {{source: {tmp_path / 'bad.parquet'}, columns: {{sequence: seq, target: label}}, split_column: part}}\n"
        f"tracking: {{uri: 'sqlite:///{tmp_path}/m.db'}}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=join_env,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in own_output(out.stderr)
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {tmp_path / 'bad.parquet'}: label column 'label' has label(s) ['sideways']")
    )
