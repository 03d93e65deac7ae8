"""Text classification through the same path: tokenized in Ray Data, embedded, 2 workers, baselines, predict."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest
from helpers import load_served, served_in_fresh_process

from pipeline import config
from pipeline.cli.main import run_command
from pipeline.data.ingest import load_splits
from pipeline.serve.explain import explain
from pipeline.serve.inputs import DataChoice
from pipeline.serve.predict import predict
from pipeline.train.driver import run_training

FILLER = "the a film story plot with and of it this".split()


def _reviews(path, *, n=240, seed=0):
    """Positive or negative by one word up front, then 2..13 filler words; a split column."""
    rng = np.random.default_rng(seed)
    texts, labels, parts = [], [], []
    for i in range(n):
        cls = i % 2
        word = rng.choice(["great", "lovely"] if cls else ["awful", "dull"])
        texts.append(" ".join([str(word).capitalize(), *rng.choice(FILLER, size=int(rng.integers(2, 14)))]) + ".")
        labels.append("pos" if cls else "neg")
        parts.append("test" if i % 5 == 0 else "train")
    pq.write_table(pa.table({"review": texts, "label": labels, "part": parts}), path)
    return texts


def test_text_classifier_on_two_workers_predicts_raw_text(ray_session, tiny_raw, tmp_path, mlflow_client):
    texts = _reviews(tmp_path / "reviews.parquet")
    raw = {
        **tiny_raw,
        "task": "classify",
        "data": {
            "source": str(tmp_path / "reviews.parquet"),
            "columns": {"sequence": "review", "target": "label"},
            "split_column": "part",
            "text": {"tokenizer": "word", "max_tokens": 8},
        },
        "model": {"hidden_size": 8, "embedding_dim": 8, "ensemble": 2},  # two members, averaged
        "train": {**tiny_raw["train"], "epochs": 6, "batch_size": 8, "lr": 0.02},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-text"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    text = splits.info.text
    assert splits.info.tokens_in and text.tokenizer == "word" and splits.info.input_size == text.vocab_size
    assert splits.info.max_len == 8  # cut at max_tokens, and counted per split
    long = sum(len(t.split()) + 1 > 8 for t in texts)  # words + the final "."
    assert sum(text.truncated.values()) == long > 0
    assert {"baseline_tfidf"} <= set(splits.test.schema().names)

    summary = run_training(cfg, name="t-text", splits=splits)
    m = summary.metrics
    assert m["test_accuracy"] > 0.9 > m["baseline_test_accuracy"]
    assert m["baseline_tfidf_test_accuracy"] > 0.9  # the honest comparison, on the same rows
    assert "baseline_lexicon_test_accuracy" not in m  # only the built-in sentiment set has a lexicon

    # served: raw text in, the class out, tokenized inside, loaded by a fresh Python process
    served = served_in_fresh_process(
        cfg.tracking.uri, "models:/tiny-text/1", ["Lovely plot and story.", "Dull film, zzz qqq."]
    )
    assert served["predicted"] == ["pos", "neg"] and all(0.5 < p <= 1 for p in served["probability"])
    model = load_served(cfg.tracking.uri, "models:/tiny-text/1")
    assert model.metadata.metadata["data_info"]["text"]["tokenizer"] == "word"
    assert model.metadata.get_input_schema().input_names() == ["text"]

    new = tmp_path / "new.parquet"
    pq.write_table(pa.table({"review": ["Lovely plot and story.", "Dull film, zzz qqq."]}), new)
    written = predict(
        "models:/tiny-text/1", DataChoice(source=str(new)), out=tmp_path / "out", tracking_uri=cfg.tracking.uri
    )
    got = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "out").glob("*.parquet"))])
    assert written == 2 and got.column("predicted").to_pylist() == ["pos", "neg"]

    # explain names the tokens (labelled data: the targets are encoded after the model's tokenizer ran)
    where = DataChoice(source=str(tmp_path / "reviews.parquet"))
    seen = explain("models:/tiny-text/1", where, row=1, out=tmp_path / "ex", tracking_uri=cfg.tracking.uri)
    assert "tokens.png" in seen.files and (tmp_path / "ex" / "tokens.png").stat().st_size > 1000
    named = re.findall(r"'([^']+)' \(\d+\)", seen.reading[0])
    words = set(" ".join(texts).lower().replace(".", " . ").split())
    assert seen.reading[0].startswith("input gate opened most at tokens") and named and set(named) <= words
    assert seen.reading[-1] == "the model averages 2 members: these are the first member's gates"


def test_translator_on_two_workers_is_served_from_mlflow(ray_session, tiny_raw, tmp_path, mlflow_client, capsys):
    raw = {
        **tiny_raw,
        "task": "translate",
        "data": {
            "source": "numbers",
            "options": {"lang": "fr", "count": 240, "high": 400},
            "columns": {"source": "source", "target": "target"},
            "text": {"tokenizer": "bpe", "vocab_size": 120, "max_tokens": 6},
            "cache_dir": tiny_raw["data"]["cache_dir"],
        },
        "model": {
            "hidden_size": 16,
            "embedding_dim": 8,
            "bidirectional": True,
            "attention": "additive",
            "beam_size": 2,
        },
        "train": {
            **tiny_raw["train"],
            "epochs": 3,
            "batch_size": 16,
            "label_smoothing": 0.1,
            "checkpoint_metric": "val_chrf",  # the best checkpoint by what the task is judged on
        },
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-translate"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    info = splits.info
    assert info.target == "sequence" and info.text.vocab_size == info.input_size
    assert info.task_info.target.vocab_size == info.output_size and info.max_len <= 6
    assert sum(info.task_info.target.truncated.values()) > 0  # long French numbers are cut at 6 tokens, counted

    summary = run_training(cfg, name="t-translate", splits=splits)
    m = summary.metrics
    for name in ("bleu", "chrf", "exact_match"):
        assert 0 <= m[f"test_{name}"] <= 100 and f"baseline_test_{name}" in m
    assert "val_accuracy" in m and 0 <= m["val_chrf"] <= 100  # greedy translations of the whole val split
    assert [h.step for h in mlflow_client.get_metric_history(summary.run_id, "val_bleu")] == [0, 1, 2]  # every epoch
    chrf = {h.step: h.value for h in mlflow_client.get_metric_history(summary.run_id, "val_chrf")}
    assert m["best_epoch"] == max(chrf, key=lambda e: (chrf[e], -e))  # picked by val_chrf, highest first
    run = mlflow_client.get_run(summary.run_id)
    logged = {a.path for a in mlflow_client.list_artifacts(run.info.run_id)}
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert "test_translate.parquet" in logged and plots["plots/attention.png"] > 1000

    sources = ["three hundred and forty-two", "twelve"]
    served = served_in_fresh_process(cfg.tracking.uri, "models:/tiny-translate/1", sources)
    assert served["source"] == sources and all(isinstance(t, str) for t in served["translation"])

    new = tmp_path / "sentences.csv"
    pa.csv.write_csv(pa.table({"source": sources}), new)
    written = predict(
        "models:/tiny-translate/1", DataChoice(source=str(new)), out=tmp_path / "out", tracking_uri=cfg.tracking.uri
    )
    got = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "out").glob("*.parquet"))])
    assert written == 2 and got.column("source").to_pylist() == sources
    assert got.column("translation").to_pylist() == served["translation"]  # the same beam search

    uri = ["--model", "models:/tiny-translate/1", "--tracking-uri", cfg.tracking.uri]
    capsys.readouterr()
    assert run_command(["translate", *uri, *sources]) == 0
    assert capsys.readouterr().out.splitlines() == served["translation"]
    assert run_command(["explain", *uri, "--data", str(new)]) == 2  # one sentence: a translator has no single stack
    assert "is a translate model" in capsys.readouterr().err


def test_transcriber_on_two_workers_is_served_from_mlflow(ray_session, tiny_raw, tmp_path, mlflow_client):
    raw = {
        **tiny_raw,
        "task": "transcribe",
        "data": {
            "source": "handwriting",
            "options": {"max_letters": 4, "renders": 1, "fonts": ["scripts"]},  # 436 words of 2-4 letters
            "columns": {"sequence": "frames", "target": "text", "group": "group"},
            "split_column": "split",
            "cache_dir": tiny_raw["data"]["cache_dir"],
        },
        "model": {"hidden_size": 16, "num_layers": 2, "bidirectional": True, "subsample": 2, "beam_size": 3},
        "train": {**tiny_raw["train"], "epochs": 2, "batch_size": 16, "checkpoint_metric": "val_cer"},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-transcribe"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    info = splits.info
    assert info.target == "labels" and info.input_size == 3  # dx, dy, pen_up
    assert info.output_size == len(info.task_info.alphabet) + 1  # + the blank
    assert set(info.task_info.alphabet) <= set("abcdefghijklmnopqrstuvwxyz")

    summary = run_training(cfg, name="t-transcribe", splits=splits)
    m = summary.metrics
    for name in ("cer", "wer", "seq_accuracy"):
        for suffix in ("", "_seen_fonts", "_held_out_font"):
            assert f"test_{name}{suffix}" in m and f"baseline_test_{name}{suffix}" in m
    assert 0 <= m["val_cer"] and m["val_infeasible"] == 0  # greedy transcripts of the whole val split
    cer = {h.step: h.value for h in mlflow_client.get_metric_history(summary.run_id, "val_cer")}
    assert sorted(cer) == [0, 1] and cer[m["best_epoch"]] == min(cer.values())  # picked by val_cer, lowest
    plots = {a.path: a.file_size for a in mlflow_client.list_artifacts(summary.run_id, "plots")}
    assert plots["plots/alignment.png"] > 1000

    # served: frames in, transcript out (the speech test sends the same pyfunc WAV bytes, and runs predict)
    import pandas as pd

    test = splits.test.take_batch(3, batch_format="pyarrow")
    model = load_served(cfg.tracking.uri, "models:/tiny-transcribe/1")
    assert model.metadata.get_input_schema().input_names() == ["frames"]
    served = model.predict(pd.DataFrame({"frames": test.column("x").to_pylist()}))
    assert len(served) == 3 and all(isinstance(t, str) for t in served["transcript"])


def test_speech_transcriber_reads_wav_files_in_predict_and_when_served(ray_session, tiny_raw, tmp_path):
    raw = {
        **tiny_raw,
        "task": "transcribe",
        "data": {
            "source": "spoken_digits",
            "options": {"count": 60, "max_digits": 2},
            "columns": {"sequence": "audio", "target": "text", "baselines": ["pocketsphinx"]},
            "split_column": "split",
            "audio": {"num_mel_bins": 20},
            "cache_dir": tiny_raw["data"]["cache_dir"],
        },
        "model": {"hidden_size": 8, "num_layers": 2, "bidirectional": True, "subsample": 2, "beam_size": 2},
        "train": {**tiny_raw["train"], "epochs": 1, "batch_size": 16},
        "tracking": {**tiny_raw["tracking"], "register_as": "tiny-speech"},
    }
    cfg = config.validate(raw)
    splits = load_splits(cfg)
    assert splits.info.input_size == 20 and splits.info.task_info.audio["num_mel_bins"] == 20  # log-mel frames
    summary = run_training(cfg, name="t-speech", splits=splits)
    m = summary.metrics
    assert {"test_wer", "baseline_test_wer", "baseline_pocketsphinx_test_wer"} <= set(m)  # the peer on the same clips
    assert 0 <= m["baseline_pocketsphinx_test_wer"] <= 1.5

    # a folder of WAV files -> transcripts, each with its file; the served model takes the same bytes
    from pipeline.data.audio import wav_bytes
    from pipeline.data.sources.spoken_digits import Speaker, SpokenDigitsOptions, utterance

    wavs = tmp_path / "wavs"
    wavs.mkdir()
    speaker, opts, rng = Speaker(), SpokenDigitsOptions(), np.random.default_rng(0)
    clips = [wav_bytes(utterance(speaker, t, voice="en-us+m3", opts=opts, rng=rng), rate=16000) for t in ("one", "two")]
    for name, data in zip(("a.wav", "b.wav"), clips):
        (wavs / name).write_bytes(data)
    written = predict(
        "models:/tiny-speech/1", DataChoice(source=str(wavs)), out=tmp_path / "out", tracking_uri=cfg.tracking.uri
    )
    got = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "out").glob("*.parquet"))]).to_pylist()
    assert written == 2 and sorted(r["path"].rsplit("/", 1)[-1] for r in got) == ["a.wav", "b.wav"]
    model = load_served(cfg.tracking.uri, "models:/tiny-speech/1")
    import pandas as pd

    served = model.predict(pd.DataFrame({"audio": clips}))
    by_file = {r["path"].rsplit("/", 1)[-1]: r["transcript"] for r in got}
    assert served["transcript"].tolist() == [by_file["a.wav"], by_file["b.wav"]]  # the same features and decoding

    # `lstmpipe serve`'s replica code: WAV files as base64 rows (mixed with frames) answer as predict does
    import base64

    from pipeline.serve.loading import load
    from pipeline.serve.online import BadRequest, OnlineModel

    online = OnlineModel(load("models:/tiny-speech/1", tracking_uri=cfg.tracking.uri))
    frames = splits.test.take(1)[0]["x"]
    rows = [{"wav": base64.b64encode(c).decode()} for c in clips] + [{"frames": np.asarray(frames).tolist()}]
    answered = online.answer(online.parse({"rows": rows}, max_rows=8))
    assert [a["transcript"] for a in answered[:2]] == [by_file["a.wav"], by_file["b.wav"]]
    assert answered[2]["transcript"] == online.answer([np.asarray(frames).tolist()])[0]["transcript"]
    for row in ({"wav": "not base64!"}, {"wav": base64.b64encode(b"RIFF not a wav").decode()}, {"wav": "", "x": 1}):
        with pytest.raises(BadRequest) as err:
            online.answer(online.parse({"rows": [row]}, max_rows=8))
        assert err.value.status == 400 and "wav" in str(err.value).lower()
    at_8k = base64.b64encode(wav_bytes(np.zeros(800, np.int16) + 100, rate=8000)).decode()  # below the model's 16 kHz
    with pytest.raises(BadRequest, match="is sampled at 8000 Hz, below the model's 16000 Hz"):
        online.answer(online.parse({"rows": [{"wav": at_8k}]}, max_rows=8))
