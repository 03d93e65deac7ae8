"""`generate` on 2 workers: characters (Lady Susan) and piano rolls (chorales) -> NLL vs baseline -> sampling."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import config
from pipeline.data.ingest import load_splits
from pipeline.serve.evaluate import evaluate
from pipeline.serve.inputs import DataChoice
from pipeline.serve.sampling import GenerateOptions, run_generate
from pipeline.train.driver import run_training


def test_character_model_trains_samples_and_evaluates(ray_session, tiny_raw, tmp_path, mlflow_client):
    raw = {
        **tiny_raw,
        "task": "generate",
        "data": {
            "source": "lady_susan",
            "options": {"chunk_chars": 100},
            "columns": {"sequence": "text"},
            "cache_dir": tiny_raw["data"]["cache_dir"],
        },
        "model": {"hidden_size": 32},
        "train": {**tiny_raw["train"], "epochs": 2, "batch_size": 16, "lr": 0.01},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-chars"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    info = splits.info
    assert info.target == "tokens" and info.task_info.token_kind == "char" and 50 < len(info.task_info.vocab) < 90
    assert info.input_size == info.output_size == len(info.task_info.vocab) and info.max_len == 100

    summary = run_training(cfg, name="g-chars", splits=splits)
    m = summary.metrics
    assert {
        "val_nll",
        "val_accuracy",
        "test_nll",
        "test_perplexity",
        "baseline_test_nll",
        "baseline_test_perplexity",
    } <= set(m)
    assert m["test_nll"] < m["baseline_test_nll"]  # beats character frequencies after 2 epochs
    assert np.isclose(m["test_perplexity"], np.exp(m["test_nll"]))
    assert "checkpoint/meta.json" in [a.path for a in mlflow_client.list_artifacts(summary.run_id, "checkpoint")]

    out = run_generate(
        "models:/tiny-chars/1",
        GenerateOptions(length=50, prime="My dear", temperature=0.8),
        out=tmp_path / "s.txt",
        tracking_uri=cfg.tracking.uri,
    )
    text = out.read_text()
    assert text.startswith("My dear") and len(text) == len("My dear") + 50 and set(text) <= set(info.task_info.vocab)

    # the same text scored by URI: per-step NLL over all rows, near the test split's
    ev = evaluate(
        f"runs:/{summary.run_id}/model",
        DataChoice(source="lady_susan", overrides=(f"data.cache_dir={tiny_raw['data']['cache_dir']}",)),
        tracking_uri=cfg.tracking.uri,
    )
    assert (
        abs(ev.metrics["test_nll"] - m["test_nll"]) < 0.3 and ev.metrics["baseline_test_nll"] > ev.metrics["test_nll"]
    )


def test_piano_roll_model_writes_midi(ray_session, tiny_raw, tmp_path):
    raw = {
        **tiny_raw,
        "task": "generate",
        "data": {"source": "chorales", "options": {"limit": 24}, "cache_dir": tiny_raw["data"]["cache_dir"]},
        "model": {"hidden_size": 16},
        "train": {**tiny_raw["train"], "epochs": 2, "batch_size": 4},
    }
    cfg = config.validate(raw)
    summary = run_training(cfg, name="g-rolls")
    m = summary.metrics
    assert m["baseline_test_nll"] > 5 and np.isfinite(m["test_nll"]) and "test_perplexity" not in m

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "generate",
            "--model",
            summary.checkpoint,
            "-n",
            "16",
            "--top-k",
            "4",
            "--out",
            str(tmp_path / "c.mid"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    from music21 import converter

    assert len(converter.parse(tmp_path / "c.mid").flatten().notes) > 0


def test_int_tokens_and_short_sequences(ray_session, tiny_raw, tmp_path):
    rows = [[1, 5, 9, 5, 1, 5, 9, 5][: 2 + i % 6] for i in range(60)] + [[7]]
    pq.write_table(pa.table({"notes": rows}), tmp_path / "t.parquet")
    raw = {
        **tiny_raw,
        "task": "generate",
        "data": {"source": str(tmp_path / "t.parquet"), "columns": {"sequence": "notes"}},
    }
    import pytest

    from pipeline.errors import DataError

    with pytest.raises(DataError, match=r"t.parquet: column 'notes' has 1 sequence\(s\) shorter than 2 steps"):
        load_splits(config.validate(raw))
    pq.write_table(pa.table({"notes": rows[:-1]}), tmp_path / "t.parquet")
    info = load_splits(config.validate(raw)).info
    assert info.task_info.vocab == ["1", "5", "9"] and info.task_info.token_kind == "int"
