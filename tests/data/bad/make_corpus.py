"""Writes the bad-input corpus beside this file (run once; the files are committed).

Each file is the smallest example of one way user data goes wrong; `cases.yaml` says which config
reads it and the one sentence the pipeline must answer with (tests/reliability/test_bad_input.py).
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.audio import wav_bytes

HERE = Path(__file__).parent


def seqs(n: int, *, steps: int = 6, value: float = 0.5) -> list:
    return [[[value, 1.0]] * steps for _ in range(n)]


def main() -> None:
    (HERE / "empty_dir").mkdir(exist_ok=True)
    (HERE / "empty_dir" / "README").write_text("a directory with no Parquet or CSV files\n")
    schema = pa.schema([("x", pa.list_(pa.list_(pa.float32()))), ("y", pa.float32())])
    pq.write_table(pa.table({"x": [], "y": []}, schema=schema), HERE / "zero_rows.parquet")
    (HERE / "not_parquet.parquet").write_text("sequence,target\n1,2\n")
    good = HERE / ".good.parquet"
    pq.write_table(pa.table({"x": seqs(200), "y": [1.0] * 200}), good)
    (HERE / "truncated.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    (HERE / "conflicting_schemas").mkdir(exist_ok=True)
    pq.write_table(pa.table({"x": seqs(20), "y": [1.0] * 20}), HERE / "conflicting_schemas" / "part-0.parquet")
    pq.write_table(pa.table({"x": seqs(20), "y": ["one"] * 20}), HERE / "conflicting_schemas" / "part-1.parquet")
    pq.write_table(pa.table({"x": seqs(40), "target": [1.0] * 40}), HERE / "missing_target.parquet")
    pq.write_table(pa.table({"x": seqs(40), "y": ["1.5"] * 40}), HERE / "string_target.parquet")
    pq.write_table(
        pa.table({"x": seqs(37) + [[[float("nan"), 1.0]] * 6] * 3, "y": [1.0] * 40}), HERE / "nan_values.parquet"
    )
    pq.write_table(pa.table({"x": seqs(40), "y": [1.0] * 38 + [float("inf")] * 2}), HERE / "inf_target.parquet")
    pq.write_table(pa.table({"x": seqs(36) + [[]] * 4, "y": [1.0] * 40}), HERE / "zero_length.parquet")
    (HERE / "short_series.csv").write_text("time,value\n" + "".join(f"{t},{t % 5}\n" for t in range(10)))
    (HERE / "bad_header.csv").write_text("2020-01-01,3.5\n2020-01-02,3.7\n2020-01-03,3.6\n")
    (HERE / "ragged_rows.csv").write_text("time,value\n" + "".join(f"{t},{t % 5}\n" for t in range(40)) + "40,1,7\n")
    (HERE / "text_values.csv").write_text("time,value\n" + "".join(f"{t},abc\n" for t in range(60)))
    pq.write_table(pa.table({"f": [[[0.0, 2.0], [1.0, 0.0]]] * 20}), HERE / "frames_not_0_1.parquet")
    labels = ["up"] * 30 + ["down"] * 30 + ["sideways"] * 5
    parts = ["train"] * 25 + ["val"] * 5 + ["train"] * 25 + ["val"] * 5 + ["test"] * 5
    pq.write_table(pa.table({"x": seqs(65), "label": labels, "part": parts}), HERE / "unseen_label.parquet")
    en, fr = [f"message {i}" for i in range(30)], [f"le message {i}" for i in range(30)]
    pq.write_table(pa.table({"source": en, "target": fr[:29] + ["   "]}), HERE / "blank_translation.parquet")
    pq.write_table(pa.table({"en": en, "target": fr}), HERE / "no_source_column.parquet")
    rows = "".join(f"message {i},le message {i}\n" for i in range(29)).encode() + b"caf\xe9,caf\xe9\n"
    (HERE / "latin1_pairs.csv").write_bytes(b"source,target\n" + rows)  # Latin-1, not UTF-8
    pen = [[[0.1, 0.2, 0.0]] * 6 for _ in range(30)]  # 6 frames each
    words = ["ab", "ba"] * 14 + ["abababab", "ab"]  # one 8-letter transcript cannot fit 6 frames
    pq.write_table(pa.table({"frames": pen, "text": words}), HERE / "transcript_too_long.parquet")
    part = ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    heard = ["ab"] * 27 + ["abc"] + ["ab"] * 2  # a test transcript with a character never trained on
    pq.write_table(pa.table({"frames": pen, "text": heard, "part": part}), HERE / "unseen_character.parquet")
    sound = [b"RIFF\x24\x00\x00\x00WAVEfmt "] * 30  # a WAV header cut short
    pq.write_table(pa.table({"audio": pa.array(sound, pa.binary()), "text": words}), HERE / "broken_wav.parquet")
    tone = (3000 * np.sin(np.arange(4000) / 5)).astype(np.int16)  # 0.5 s at 8 kHz
    low = [wav_bytes(tone, rate=8000)] * 30  # below data.audio.sample_rate's 16 kHz
    pq.write_table(pa.table({"audio": pa.array(low, pa.binary()), "text": words}), HERE / "low_rate_wav.parquet")
    silent = [wav_bytes(tone, rate=16000)] * 29 + [wav_bytes(tone[:0], rate=16000)]  # one file with 0 samples
    pq.write_table(pa.table({"audio": pa.array(silent, pa.binary()), "text": words}), HERE / "empty_wav.parquet")


if __name__ == "__main__":
    main()
