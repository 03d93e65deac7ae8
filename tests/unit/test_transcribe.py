"""Transcription without Ray: the handwriting synthesizer, CTC decoding, the loss, metrics, config rules."""

import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.config import ModelConfig, validate
from pipeline.errors import DataError
from pipeline.model.cells import pool_time
from pipeline.model.ctc import BLANK, Transcriber, greedy, infeasible, output_lengths, prefix_beam
from pipeline.tasks import transcribe, transcribe_report

# ---- the handwriting source


def test_handwriting_is_deterministic_per_seed_and_moves_the_pen():
    from pipeline.data.sources.handwriting import write

    a = write("vernon", font="scripts", step=0.12, rng=np.random.default_rng(3))
    b = write("vernon", font="scripts", step=0.12, rng=np.random.default_rng(3))
    c = write("vernon", font="scripts", step=0.12, rng=np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape[1] == 3 and a.dtype == np.float32
    assert set(np.unique(a[:, 2])) <= {0.0, 1.0} and a[:, 2].sum() >= 1  # 'v','e','r','n','o','n': pen lifted
    width = np.cumsum(a[:, 0])[-1]
    assert 1.0 < width < 6.0  # six letters of height ~1, whatever the slant and scale


def test_handwriting_holds_test_words_out_and_writes_them_in_a_held_out_font():
    from pipeline.data.sources.handwriting import HandwritingOptions, generate, split_of

    table = generate(HandwritingOptions(max_letters=3, renders=1))
    rows = table.to_pylist()
    splits = {}
    for r in rows:
        splits.setdefault(r["text"], set()).add(r["split"])
        assert r["split"] == split_of(r["text"])
    assert all(len(s) == 1 for s in splits.values())  # a word is in one split only
    held = [r for r in rows if r["group"] == "held_out_font"]
    assert held and all(r["font"] == "timesi" and r["split"] == "test" for r in held)
    assert {r["font"] for r in rows if r["group"] == "seen_fonts"} == {"scripts", "scriptc"}


def test_a_held_out_font_that_is_also_a_training_font_is_refused():
    raw = {"task": "transcribe", "data": {"source": "handwriting", "options": {"held_out_font": "scripts"}}}
    with pytest.raises(Exception, match="held_out_font 'scripts' is also a training font"):
        validate(raw)


# ---- CTC decoding on hand-made posteriors


def _lp(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_greedy_collapses_repeats_and_drops_blanks():
    # frames: a a _ a b b _ _ b  -> a a b b  (a blank separates the two a's and the two b's)
    best = [1, 1, 0, 1, 2, 2, 0, 0, 2]
    lp = np.log(np.full((len(best), 3), 0.05))
    lp[np.arange(len(best)), best] = np.log(0.9)
    assert greedy(lp) == [1, 1, 2, 2]
    assert prefix_beam(lp, beam=1) == greedy(lp)


def test_prefix_beam_sums_alignments_that_greedy_splits():
    # Greedy reads the blank at both frames (0.6 each): empty. But "a" has 1 - 0.6^2 = 0.64 over
    # its three alignments (a_, _a, aa): beam search finds it.
    lp = _lp([[0.6, 0.4], [0.6, 0.4]])
    assert greedy(lp) == []
    assert prefix_beam(lp, beam=4) == [1]


def test_prefix_beam_keeps_repeats_apart_only_across_a_blank():
    lp = _lp([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]])  # a _ a
    assert prefix_beam(lp, beam=8) == [1, 1]
    lp = _lp([[0.01, 0.98, 0.01], [0.01, 0.98, 0.01], [0.01, 0.98, 0.01]])  # a a a
    assert prefix_beam(lp, beam=8) == [1]


def test_prefix_beam_equals_an_exhaustive_search_on_a_small_case():
    import itertools

    rng = np.random.default_rng(0)
    lp = _lp(rng.random((4, 3)).tolist())

    def collapse(path):
        out = [k for k, _ in itertools.groupby(path)]
        return tuple(k for k in out if k != BLANK)

    totals: dict[tuple, float] = {}
    for path in itertools.product(range(3), repeat=4):
        key = collapse(path)
        totals[key] = totals.get(key, 0.0) + math.exp(sum(lp[t, k] for t, k in enumerate(path)))
    assert tuple(prefix_beam(lp, beam=64)) == max(totals, key=totals.get)


# ---- the model and the loss


def test_subsampling_pools_real_frames_and_marks_the_end_with_nan():
    x = torch.tensor([[[1.0], [3.0], [5.0], [0.0]]])  # one sequence of 3 real steps
    pooled = pool_time(x, torch.tensor([3]), factor=2)
    assert pooled.shape == (1, 2, 1) and pooled[0, :, 0].tolist() == [2.0, 5.0]  # padding not averaged in
    cfg = ModelConfig(hidden_size=8, num_layers=2, bidirectional=True, subsample=3)
    model = Transcriber(cfg, input_size=2, output_size=5, readout="every")
    logits = model(torch.randn(2, 10, 2), torch.tensor([10, 4]))  # (B, ceil(10/3)=4, V)
    assert logits.shape == (2, 4, 5)
    assert output_lengths(logits).tolist() == [4, 2]
    assert torch.isnan(logits[1, 2:]).all() and not torch.isnan(logits[1, :2]).any()


def test_ctc_loss_matches_torch_and_counts_unalignable_rows():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)
    logits[1, 3:] = float("nan")  # the second row has 3 frames
    y = torch.tensor([[1, 2, 3], [2, 2, 0]])  # row 2: "2 2" needs 3 frames (a blank between): feasible
    terms = transcribe.loss_terms(logits, y)
    expected = torch.nn.functional.ctc_loss(
        torch.log_softmax(logits[:1], -1).transpose(0, 1), y[:1], torch.tensor([5]), torch.tensor([3]), reduction="sum"
    ) + torch.nn.functional.ctc_loss(
        torch.log_softmax(logits[1:, :3], -1).transpose(0, 1),
        y[1:, :2],
        torch.tensor([3]),
        torch.tensor([2]),
        reduction="sum",
    )
    total, n = terms["loss"]
    assert n == 5 and torch.allclose(total, expected)
    assert terms["infeasible"][0].item() == 0
    assert infeasible(torch.tensor([3]), torch.tensor([[2, 2, 2]]), torch.tensor([4])).tolist() == [True]


# ---- data rules and metrics


def test_a_transcript_character_never_trained_on_is_named():
    with pytest.raises(DataError, match="val split: transcript 'naïve' has the character 'ï'"):
        transcribe.encode(["nave", "naïve"], list("aenv"), where="val split")


def test_labels_flag_transcripts_their_frames_cannot_align():
    batch = pa.table(
        {"x": pa.array([[[0.0]] * 4, [[0.0]] * 4], pa.list_(pa.list_(pa.float32()))), "text": ["ab", "aab"]}
    )
    out = transcribe.labels(batch, alphabet=["a", "b"], subsample=2, where="train split")
    assert out.column("y").to_pylist() == [[1, 2], [1, 1, 2]]
    assert out.column("alignable").to_pylist() == [True, False]  # 2 frames after subsampling; "aab" needs 4


def test_metrics_are_jiwers_with_the_most_frequent_transcript_as_baseline():
    import jiwer

    out = {"hyp": ["the cat", "a dog", "sat"], "ref": ["the cat", "the dog", "sat on"], "group": ["a", "b", "b"]}
    info = type("Info", (), {"task_info": transcribe.TranscribeInfo(alphabet=list("acdeghnost "), most_frequent="the")})
    m = transcribe_report.test_metrics(out, info)
    assert m["test_cer"] == pytest.approx(jiwer.cer(out["ref"], out["hyp"]))
    assert m["test_wer"] == pytest.approx(jiwer.wer(out["ref"], out["hyp"]))
    assert m["test_seq_accuracy"] == pytest.approx(1 / 3)
    assert m["baseline_test_cer"] == pytest.approx(jiwer.cer(out["ref"], ["the"] * 3))
    assert m["test_cer_a"] == 0.0 and m["test_wer_b"] == pytest.approx(jiwer.wer(out["ref"][1:], out["hyp"][1:]))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"subsample": 2}}, "model.subsample 2 pools frames between the first and second layers"),
        (
            {"task": "classify", "data": {"source": "digits"}, "model": {"subsample": 2, "num_layers": 2}},
            "model.subsample is for task: transcribe",
        ),
        (
            {"task": "classify", "data": {"source": "digits", "columns": {"group": "g"}}},
            "data.columns.group is for task: transcribe",
        ),
        ({"data": {"missing": "ffill"}}, "data.missing: ffill does not apply to transcripts"),
        ({"data": {"text": {"tokenizer": "char"}}}, "data.text is for task: classify or translate"),
        ({"model": {"pooling": "mean"}}, "model.pooling does not apply to transcribe"),
    ],
)
def test_transcribe_config_rules(raw, message):
    base = {"task": "transcribe", "data": {"source": "handwriting"}}
    merged = base | raw
    merged["data"] = base["data"] | raw.get("data", {})  # the case's data.source wins
    with pytest.raises(Exception, match=message):
        validate(merged)


# ---- speech: the synthesizer, WAV decoding and features


def test_spoken_digits_are_deterministic_per_seed_and_hold_test_voices_out():
    from pipeline.data.sources.spoken_digits import SpokenDigitsOptions, generate

    a = generate(SpokenDigitsOptions(count=20, max_digits=2, seed=5))
    b = generate(SpokenDigitsOptions(count=20, max_digits=2, seed=5))
    assert a.equals(b)  # the audio too, byte for byte: eSpeak NG runs in a fresh process, seeded per clip
    assert not a.column("audio").equals(generate(SpokenDigitsOptions(count=20, max_digits=2, seed=6)).column("audio"))
    rows = a.to_pylist()
    assert all(1 <= len(r["text"].split()) <= 2 for r in rows)
    test_variants = {r["voice"].split("+")[1] for r in rows if r["split"] == "test"}
    heard_in_training = {r["voice"].split("+")[1] for r in rows if r["split"] != "test"}
    assert test_variants <= {"f3", "m3"} and not (heard_in_training & {"f3", "m3"})
    assert all((r["pocketsphinx"] is None) == (r["split"] != "test") for r in rows)


def _tone(seconds=0.5, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_features_are_the_same_from_bytes_paths_and_the_served_rows(tmp_path):
    from pipeline.data.audio import AudioSpec, audio_frames, wav_bytes
    from pipeline.tasks import DataInfo

    data = wav_bytes(_tone(), rate=16000)
    (tmp_path / "a.wav").write_bytes(data)
    spec = AudioSpec(num_mel_bins=40)
    from_bytes = audio_frames(pa.table({"a": pa.array([data], pa.binary())}), column="a", spec=spec)
    from_path = audio_frames(pa.table({"a": [str(tmp_path / "a.wav")]}), column="a", spec=spec)
    frames = np.asarray(from_bytes.to_pylist()[0])
    assert frames.shape == (50, 40) and from_bytes.equals(from_path)  # 0.5 s at a 10 ms shift
    info = DataInfo(
        task="transcribe",
        input_size=40,
        output_size=3,
        target="labels",
        max_len=50,
        task_info=transcribe.TranscribeInfo(alphabet=["a", "b"], most_frequent="a", audio=vars(spec)),
    )
    served = transcribe.frame_rows([data], info, audio=True)
    assert served.column("x").combine_chunks().equals(from_bytes)  # the served model featurizes as training did


def test_audio_at_another_rate_is_resampled_down_refused_up_and_broken_audio_is_named(tmp_path):
    from pipeline.data.audio import AudioSpec, audio_frames, wav_bytes

    spec = AudioSpec(num_mel_bins=40)
    at_44k = audio_frames(pa.table({"a": pa.array([wav_bytes(_tone(rate=44100), rate=44100)])}), column="a", spec=spec)
    assert len(at_44k.to_pylist()[0]) == 50  # resampled to 16 kHz: the same frames per second
    at_8k = pa.table({"a": pa.array([wav_bytes(_tone(rate=8000), rate=8000)])})
    with pytest.raises(
        DataError,
        match=r"a file in column 'a' is sampled at 8000 Hz, below the model's 16000 Hz.*"
        r"data.audio.sample_rate: 8000 \(or data.audio.upsample: allow\)",
    ):
        audio_frames(at_8k, column="a", spec=spec)  # upsampled, its mel bins above 4 kHz would be empty
    noise = np.random.default_rng(0).normal(0, 3000, size=(2, 8000)).astype(np.int16)  # 1 s at 8 kHz, 0.5 s at 16
    allow = AudioSpec(num_mel_bins=40, upsample="allow")
    top = {}
    for rate, x in ((8000, noise[0]), (16000, noise[1])):
        rows = audio_frames(pa.table({"a": pa.array([wav_bytes(x, rate=rate)])}), column="a", spec=allow)
        top[rate] = np.asarray(rows.to_pylist()[0])[:, -8:].mean()  # the mel bins above 4 kHz, log energy
    assert top[8000] < top[16000] - 10  # allowed, upsampled: white noise leaves the top bins (nearly) empty
    with pytest.raises(DataError, match="a file in column 'a' is not a readable PCM WAV file"):
        audio_frames(pa.table({"a": pa.array([b"RIFF...."], pa.binary())}), column="a", spec=spec)
    with pytest.raises(DataError, match="a file in column 'a' holds no audio"):
        audio_frames(pa.table({"a": pa.array([wav_bytes(np.zeros(0), rate=16000)])}), column="a", spec=spec)
    with pytest.raises(DataError, match="cannot read audio file .*missing.wav"):
        audio_frames(pa.table({"a": [str(tmp_path / "missing.wav")]}), column="a", spec=spec)
