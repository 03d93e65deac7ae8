"""Bach chorales (music21's bundled corpus, 371 chorales) as piano rolls for generation.

Each chorale is transposed so its tonic is C (major or minor), read on a grid of
`steps_per_quarter` frames per quarter note, and written as one row: `x` is a list of frames, each
88 numbers (piano keys A0..C8, 1 = sounding). Parsing the corpus takes 20-60 s; the Parquet file is
cached like every built-in dataset. `write_midi` turns a generated roll back into a MIDI file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from pipeline.data.sources.options import STRICT
from pipeline.data.sources.table import ragged_sequence_table

LOWEST_KEY = 21  # MIDI number of A0, the piano's lowest key
KEYS = 88


class ChoralesOptions(BaseModel):
    model_config = STRICT

    steps_per_quarter: int = Field(1, ge=1, le=4, description="frames per quarter note")
    limit: int | None = Field(None, ge=1, description="only the first N chorales (tests)")


def piano_roll(score, *, steps_per_quarter: int) -> np.ndarray:
    """A music21 score -> (T, 88) float32 multi-hot frames, transposed to tonic C."""
    key = score.analyze("key")
    shift = -((key.tonic.pitchClass + 6) % 12 - 6)  # nearest transposition to C: -5..+6
    frames = int(np.ceil(float(score.highestTime) * steps_per_quarter))
    roll = np.zeros((frames, KEYS), np.float32)  # (T, 88)
    for note in score.flatten().notes:
        start = int(round(float(note.offset) * steps_per_quarter))
        end = max(start + 1, int(round(float(note.offset + note.quarterLength) * steps_per_quarter)))
        for pitch in note.pitches:
            key_index = pitch.midi + shift - LOWEST_KEY
            if 0 <= key_index < KEYS:
                roll[start:end, key_index] = 1.0
    return roll


def generate(opts: ChoralesOptions) -> pa.Table:
    from music21 import corpus  # the chorales ship inside music21's wheel

    rolls, titles = [], []
    for score in corpus.chorales.Iterator(returnType="stream"):
        roll = piano_roll(score, steps_per_quarter=opts.steps_per_quarter)
        if len(roll) >= 2:
            rolls.append(roll)
            titles.append(str(score.metadata.title if score.metadata else ""))
        if opts.limit is not None and len(rolls) >= opts.limit:
            break
    return ragged_sequence_table(
        rolls, np.zeros(len(rolls), np.float32), extra={"title": np.array(titles, dtype=object)}
    )


def write_midi(roll: np.ndarray, path: str | Path, *, steps_per_quarter: int = 1) -> None:
    """(T, 88) 0/1 frames -> a MIDI file; a key held over consecutive frames is one note."""
    from music21 import note, stream

    part = stream.Part()
    step = 1.0 / steps_per_quarter
    active = roll > 0.5  # (T, 88)
    for k in range(KEYS):
        t = 0
        while t < len(active):
            if not active[t, k]:
                t += 1
                continue
            end = t
            while end < len(active) and active[end, k]:
                end += 1
            n = note.Note(midi=LOWEST_KEY + k, quarterLength=(end - t) * step)
            part.insert(t * step, n)
            t = end
    score = stream.Score([part])
    score.write("midi", fp=str(path))
