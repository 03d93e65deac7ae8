"""Audio -> frames: WAV files (bytes or paths) decoded, resampled to `data.audio.sample_rate` and
turned into log-mel filterbank frames (`kaldi-native-fbank`, Kaldi's fbank in C++: 25 ms windows
every 10 ms by default, no dither so the same audio gives the same frames everywhere).

Pure functions on Arrow batches: Ray Data runs `audio_frames` inside `map_batches` for training,
and the served model and `lstmpipe predict` run the same function, so a raw WAV is featurized
exactly as training featurized it.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from pipeline.errors import DataError

AUDIO_COLUMN, PATH_COLUMN = "audio", "path"  # a folder of WAV files read as a source: one row per file


@dataclass(frozen=True)
class AudioSpec:
    """How audio becomes frames (data.audio, saved with the model)."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    upsample: str = "refuse"  # audio below sample_rate: "refuse" (Kaldi's default) or "allow"


def read_wav(data: bytes, *, where: str) -> tuple[np.ndarray, int]:
    """WAV bytes (PCM, 8/16/32-bit, any channels) -> (mono samples scaled to int16's range, float32; rate)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as err:
        raise DataError(f"{where} is not a readable PCM WAV file ({err}); convert it to 16-bit PCM WAV") from err
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise DataError(f"{where} has {8 * width}-bit samples; convert it to 16-bit PCM WAV")
    x = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    x = (x - 128.0) * 256.0 if width == 1 else x / 2 ** (8 * width - 16)  # int16's range
    x = x.reshape(-1, channels).mean(axis=1) if channels > 1 else x  # (n,) mono
    if len(x) == 0:
        raise DataError(f"{where} holds no audio (0 samples); drop it")
    return x, rate


def resample(x: np.ndarray, *, rate: int, to: int) -> np.ndarray:
    """Polyphase resampling (scipy) to `to` Hz."""
    if rate == to:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, to)
    return resample_poly(x, to // g, rate // g).astype(np.float32)


def check_rate(rate: int, *, spec: AudioSpec, where: str) -> None:
    """Audio sampled below spec.sample_rate has nothing above rate/2 Hz: upsampled, its top mel bins
    stay empty where the training audio had sound, so it is refused unless data.audio.upsample: allow."""
    if rate < spec.sample_rate and spec.upsample != "allow":
        raise DataError(
            f"{where} is sampled at {rate} Hz, below the model's {spec.sample_rate} Hz, so its mel bins above "
            f"{rate // 2} Hz would be empty; use audio sampled at {spec.sample_rate} Hz or more, or train with "
            f"data.audio.sample_rate: {rate} (or data.audio.upsample: allow)"
        )


def fbank(x: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """(n,) samples at spec.sample_rate -> (T, num_mel_bins) log-mel frames, T = n / shift rounded."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = spec.sample_rate
    opts.frame_opts.dither = 0.0  # deterministic
    opts.frame_opts.snip_edges = False  # one frame per shift, the edges padded
    opts.frame_opts.frame_length_ms = spec.frame_length_ms
    opts.frame_opts.frame_shift_ms = spec.frame_shift_ms
    opts.mel_opts.num_bins = spec.num_mel_bins
    bank = knf.OnlineFbank(opts)
    bank.accept_waveform(spec.sample_rate, x)
    bank.input_finished()
    return np.stack([bank.get_frame(i) for i in range(bank.num_frames_ready)]).astype(np.float32)  # (T, M)


def _wav_bytes(arr: pa.Array, *, column: str) -> list[tuple[bytes, str]]:
    """An audio column -> (WAV bytes, where) per row: binary holds the files, strings are paths."""
    if pat.is_binary(arr.type) or pat.is_large_binary(arr.type):
        return [(b, f"a file in column '{column}'") for b in arr.to_pylist()]  # Ray Data batches carry no row number
    if pat.is_string(arr.type) or pat.is_large_string(arr.type):
        out = []
        for path in arr.to_pylist():
            try:
                out.append((Path(path).read_bytes(), str(path)))
            except OSError as err:
                raise DataError(f"cannot read audio file {path}: {err.strerror}; fix the path") from err
        return out
    raise DataError(f"audio column '{column}' holds {arr.type}; expected WAV bytes or file paths")


def audio_frames(batch: pa.Table, *, column: str, spec: AudioSpec) -> pa.Array:
    """A batch's audio column -> its log-mel frames (list<list<float32>>, (T_i, M) per row)."""
    if column not in batch.column_names:
        raise DataError(f"audio column '{column}' is missing (columns: {batch.column_names}); set data.columns")
    arr = batch.column(column).combine_chunks()
    if arr.null_count:
        raise DataError(f"audio column '{column}' has {arr.null_count} missing file(s); drop those rows")
    frames = []
    for data, where in _wav_bytes(arr, column=column):
        x, rate = read_wav(data, where=where)
        check_rate(rate, spec=spec, where=where)
        frames.append(fbank(resample(x, rate=rate, to=spec.sample_rate), spec))
    offsets = np.r_[0, np.cumsum([len(f) for f in frames])].astype(np.int32)
    values = np.concatenate(frames).reshape(-1) if frames else np.zeros(0, np.float32)
    steps = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), spec.num_mel_bins)
    return pa.ListArray.from_arrays(pa.array(offsets), steps.cast(pa.list_(pa.float32())))


def wav_bytes(samples: np.ndarray, *, rate: int) -> bytes:
    """int16 samples -> a mono 16-bit PCM WAV file's bytes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return out.getvalue()
