"""Spoken digit strings synthesized with eSpeak NG ("seven three nine zero"): the library and its
voice data come in the `espeakng-loader` wheel (GPL-3 data, called through ctypes; nothing is
downloaded). Each utterance is 1-7 digits in an English voice (en, en-us, en-gb-..., each with a
+f/+m variant), at a random rate and pitch, with a random gain and white noise at `snr_db`.

Everything drawn (texts, voices, rates, pitches, gains, noise) is a function of the seed, and so
is the audio: eSpeak NG keeps state from one utterance to the next (the same call twice in a row
gives clips a few samples apart), and its voice variants' breath noise draws random numbers. Each
set is synthesized in a fresh Python process, clip after clip, with eSpeak's random numbers seeded
per clip from (seed, clip): one seed, the same bytes (checked across processes).
The Parquet is written once per options and cached.

Voice variants in `test_variants` are used for the test split only (speaker-independent
recognition: the test voices are never heard in training). Columns: `audio` (16-bit PCM WAV
bytes at `sample_rate`), `text`, `split`, `voice`, and `pocketsphinx`: for the test clips, what
CMU PocketSphinx (the `pocketsphinx` wheel's US English model, with a grammar of digit words)
hears in them, computed once when the set is written: a real recognizer as the peer baseline.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field, model_validator

from pipeline.data.sources.options import SEED_MAX, STRICT

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BASES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
VARIANTS = tuple(f"f{i}" for i in range(1, 6)) + tuple(f"m{i}" for i in range(1, 8))
_SYNCHRONOUS, _RATE, _PITCH, _POS_CHARACTER = 2, 1, 3, 1  # speak_lib.h constants


class SpokenDigitsOptions(BaseModel):
    model_config = STRICT

    count: int = Field(4000, ge=10, le=200_000, description="utterances")
    min_digits: int = Field(1, ge=1, le=20)
    max_digits: int = Field(7, ge=1, le=20)
    snr_db: float | None = Field(20.0, ge=-10, le=100, description="white noise at this SNR (None: clean)")
    test_variants: list[str] = Field(["f3", "m3"], min_length=1, description="voice variants heard only in test")
    sample_rate: int = Field(16000, ge=8000, le=48000, description="Hz of the WAV files written")
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _check(self) -> SpokenDigitsOptions:
        unknown = sorted(set(self.test_variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"test_variants {unknown} are not eSpeak variants; use some of {', '.join(VARIANTS)}")
        if len(set(self.test_variants)) == len(VARIANTS):
            raise ValueError("test_variants holds every variant, leaving none for training; hold out fewer")
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits {self.min_digits} > max_digits {self.max_digits}")
        return self


class Speaker:
    """eSpeak NG in this process, synchronous: text -> int16 samples at its native 22,050 Hz."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = os.path.dirname(espeakng_loader.get_data_path())  # the folder holding espeak-ng-data
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, data.encode(), 0)
        if self.rate <= 0:
            raise RuntimeError(f"eSpeak NG did not start (espeak_Initialize returned {self.rate})")
        self.chunks: list[np.ndarray] = []
        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback(self._collect)  # kept: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # go on

    def say(self, text: str, *, voice: str, rate: int, pitch: int, seed: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice '{voice}'")
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))  # its own random numbers
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))  # and libc's, which its breath noise draws
        self.chunks = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def utterance(speaker: Speaker, text: str, *, voice: str, opts: SpokenDigitsOptions, rng) -> np.ndarray:
    """One utterance: speech at a random rate and pitch, gain and noise -> int16 at opts.sample_rate."""
    from pipeline.data.audio import resample

    rate, pitch, seed = int(rng.integers(130, 230)), int(rng.integers(25, 75)), int(rng.integers(1, 2**31))
    x = speaker.say(text, voice=voice, rate=rate, pitch=pitch, seed=seed)
    x = resample(x.astype(np.float32), rate=speaker.rate, to=opts.sample_rate) * rng.uniform(0.3, 1.0)
    if opts.snr_db is not None:
        power = float(np.mean(x**2)) or 1.0
        x = x + rng.normal(0.0, np.sqrt(power / 10 ** (opts.snr_db / 10)), size=x.shape)
    return np.clip(x, -32768, 32767).astype(np.int16)


def pocketsphinx(clips: list[np.ndarray], *, sample_rate: int) -> list[str]:
    """What PocketSphinx hears in each int16 clip, allowed only digit words (a JSGF grammar)."""
    import tempfile

    from pocketsphinx import Decoder

    from pipeline.data.audio import resample

    grammar = "#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( " + " | ".join(DIGITS) + " )+ ;\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.gram")
        with open(path, "w", encoding="utf-8") as f:
            f.write(grammar)
        decoder = Decoder(samprate=16000, jsgf=path, loglevel="FATAL")
        heard = []
        for clip in clips:
            x = resample(clip.astype(np.float32), rate=sample_rate, to=16000).astype(np.int16)  # its model's rate
            decoder.start_utt()
            decoder.process_raw(x.tobytes(), full_utt=True)
            decoder.end_utt()
            heard.append(decoder.hyp().hypstr if decoder.hyp() is not None else "")
    return heard


def generate(opts: SpokenDigitsOptions) -> pa.Table:
    """The set: clips synthesized in a fresh process (see the module's doc), then PocketSphinx on the test clips."""
    from pipeline.data.audio import wav_bytes

    clips = _synthesized(opts)
    split = clips.column("split").to_pylist()
    column = clips.column("clip").combine_chunks()
    values, offsets = column.values.to_numpy(), column.offsets.to_numpy()
    samples = [values[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]  # int16 each
    tests = [c for c, s in zip(samples, split, strict=True) if s == "test"]
    heard = iter(pocketsphinx(tests, sample_rate=opts.sample_rate))
    audio = pa.array([wav_bytes(c, rate=opts.sample_rate) for c in samples], pa.binary())
    rest = {name: clips.column(name) for name in ("text", "split", "voice")}
    pocket = pa.array([next(heard) if s == "test" else None for s in split], pa.string())
    return pa.table({"audio": audio} | rest | {"pocketsphinx": pocket})


def _synthesized(opts: SpokenDigitsOptions) -> pa.Table:
    """`synthesize(opts)` run by `python -m pipeline.data.sources.spoken_digits` in a new process:
    eSpeak NG starts there with none of this process's history."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clips.arrow"
        command = [sys.executable, "-m", __name__, opts.model_dump_json(), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"synthesizing spoken_digits failed in its eSpeak NG process: {last}")
        with pa.memory_map(str(out)) as source:
            return pa.ipc.open_file(source).read_all()


def synthesize(opts: SpokenDigitsOptions) -> pa.Table:
    """Every clip as int16 samples at opts.sample_rate, with its text, split and voice."""
    speaker = Speaker()
    train_variants = [v for v in VARIANTS if v not in opts.test_variants]
    rows: dict[str, list] = {"clip": [], "text": [], "split": [], "voice": []}
    for i in range(opts.count):
        rng = np.random.default_rng([opts.seed, i])  # per utterance: one clip's length never shifts the next's draws
        split = "test" if i % 10 == 0 else "val" if i % 10 == 1 else "train"
        variant = rng.choice(opts.test_variants if split == "test" else train_variants)
        voice = f"{rng.choice(BASES)}+{variant}"
        text = " ".join(rng.choice(DIGITS, size=int(rng.integers(opts.min_digits, opts.max_digits + 1))))
        rows["clip"].append(utterance(speaker, text, voice=voice, opts=opts, rng=rng))
        rows["text"].append(text)
        rows["split"].append(split)
        rows["voice"].append(voice)
    clips = pa.array(rows.pop("clip"), pa.list_(pa.int16()))
    return pa.table({"clip": clips} | {k: pa.array(v, pa.string()) for k, v in rows.items()})


if __name__ == "__main__":  # _synthesized's process: options JSON, output path
    table = synthesize(SpokenDigitsOptions.model_validate_json(sys.argv[1]))
    with pa.OSFile(sys.argv[2], "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
