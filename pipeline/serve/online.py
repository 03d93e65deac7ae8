"""Online answers from a trained model, without Ray: what each `lstmpipe serve` replica runs per
request (`pipeline.serve.deployment` puts it behind HTTP).

A request is a list of rows (JSON objects); each answer row holds the task's output columns, as
`lstmpipe predict` writes them for the same inputs:

- forecast, anomaly: `{"x": window}`, the newest `lookback` steps in the data's units, a list of
  values (one column) or of lists in the model's channel order (target, features, static features,
  static categories one-hot, then future features and calendar numbers read `horizon` steps ahead;
  docs/tasks-and-data.md): the forecast columns per window (forecast, distribution parameters or
  quantiles, conformal intervals). An anomaly row may add `"y"`: the values that followed
  (up to `horizon`), then scored and flagged as predict scores one window's forecasts.
- classify, regression, generate on numbers: `{"x": sequence}`, (steps, features) lists.
- text in (classify on text, translate): `{"text": "..."}`; a transcriber: `{"frames": [[...], ...]}`,
  or, when it was trained on audio, `{"wav": "<base64 of a WAV file>"}` (featurized as in training).

Input checks raise `BadRequest` (an HTTP 4xx and one sentence), never a server error.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch

from pipeline.data.batches import collate_for
from pipeline.data.sources.table import sequence_table
from pipeline.data.windows import window_reference
from pipeline.errors import DataError
from pipeline.serve.loading import Trained
from pipeline.tasks import get_task

Kind = Literal["windows", "sequences", "texts", "frames"]
MAX_STEPS = 100_000  # steps of one sequence a request may send


class BadRequest(Exception):
    """A request the model cannot answer as sent: `status` is its HTTP status (4xx)."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.status = status


def kind_of(trained: Trained) -> Kind:
    info = trained.info
    if info.task == "transcribe":
        return "frames"
    if info.tokens_in:
        return "texts"
    if info.target == "tokens":
        raise DataError(
            "a generate model on tokens samples text with `lstmpipe generate`; lstmpipe serve answers forecast, "
            "anomaly, classify, regression, translate, transcribe and generate-on-frames models"
        )
    return "windows" if info.task in ("forecast", "anomaly") else "sequences"


@dataclass(frozen=True)
class Wav:
    """One audio row of a transcriber trained on audio: a WAV file's bytes."""

    data: bytes


@dataclass(frozen=True)
class Window:
    """One forecast/anomaly input: x (L, C) in data units; y (k,) the values that followed, or None;
    `series`: its series id (a model trained with data.window.normalize series scales by it)."""

    x: np.ndarray
    y: np.ndarray | None = None
    series: str | None = None


class OnlineModel:
    """A trained model answering rows; `answer` takes the parsed rows of one or many requests."""

    def __init__(self, trained: Trained):
        torch.set_num_threads(1)  # one replica per core; Serve scales out with replicas
        self.trained, self.info, self.kind = trained, trained.info, kind_of(trained)
        self.task = get_task(self.info.task)
        self.model = trained.model.eval()

    # -- parsing: JSON rows -> checked inputs -------------------------------------------------
    def parse(self, body: Any, *, max_rows: int) -> list:
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows:
            raise BadRequest(f'send {{"rows": [...]}}, a non-empty list of rows, each {self.row_example()}')
        if len(rows) > max_rows:
            raise BadRequest(
                f"{len(rows)} rows in one request, more than this server takes ({max_rows}); split the batch",
                status=413,
            )
        return [self._parse_row(row, where=f"row {i}") for i, row in enumerate(rows)]

    def row_example(self) -> str:
        return {
            "windows": f'{{"x": [the last {self.info.max_len} values]'
            + (', "series": "<its series id>"' if self.by_series else "")
            + "}",
            "sequences": '{"x": [[step values], ...]}',
            "texts": '{"text": "..."}',
            "frames": '{"frames": [[frame values], ...]}'
            + (' or {"wav": "<base64 of a WAV file>"}' if self.reads_audio else ""),
        }[self.kind]

    @property
    def by_series(self) -> bool:
        """A forecast model scaled per series (data.window.normalize series): a window names its series."""
        return getattr(self.info.task_info, "window_normalize", "none") == "series"

    @property
    def reads_audio(self) -> bool:
        return self.kind == "frames" and self.info.task_info.audio_spec is not None

    def _parse_row(self, row: Any, *, where: str):
        key = {"texts": "text", "frames": "frames"}.get(self.kind, "x")
        if self.reads_audio and isinstance(row, dict) and "wav" in row:
            return self._wav(row, where=where)
        if not isinstance(row, dict) or key not in row:
            raise BadRequest(f"{where}: expected an object with '{key}', like {self.row_example()}")
        allowed = {key, *(("y",) if self.info.task == "anomaly" else ()), *(("series",) if self.by_series else ())}
        extra = sorted(set(row) - allowed)
        if extra:
            raise BadRequest(f"{where}: unknown field '{extra[0]}'; send only {self.row_example()}")
        if self.kind == "texts":
            if not isinstance(row[key], str) or not row[key].strip():
                raise BadRequest(f"{where}: 'text' must be a non-empty string")
            return row[key]
        steps = self.info.input_size if self.kind != "frames" else None
        x = as_steps(row[key], columns=steps, where=f"{where}: '{key}'")
        if self.kind == "frames":
            return x.tolist()
        if self.kind == "windows":
            return self._window(x, row.get("y"), where=where, series=self.series_of(row, where=where))
        return x

    def series_of(self, row: dict, *, where: str) -> str | None:
        if not self.by_series:
            return None
        series = row.get("series")
        if not isinstance(series, str) or series not in self.info.task_info.series_scales:
            known = len(self.info.task_info.series_scales)
            raise BadRequest(
                f"{where}: 'series' must name one of the {known} series this model was trained on (it scales each "
                f"by its training mean and std); got {str(series)[:80]!r}"
            )
        return series

    def _wav(self, row: dict, *, where: str) -> Wav:
        extra = sorted(set(row) - {"wav"})
        if extra:
            raise BadRequest(f'{where}: unknown field \'{extra[0]}\'; send only {{"wav": "<base64 WAV>"}}')
        try:
            data = base64.b64decode(row["wav"], validate=True)
        except (TypeError, ValueError) as err:
            raise BadRequest(f"{where}: 'wav' must be a WAV file's bytes in base64 ({err})") from err
        if not data:
            raise BadRequest(f"{where}: 'wav' is empty; send a WAV file's bytes in base64")
        return Wav(data=data)

    def _window(self, x: np.ndarray, y: Any, *, where: str, series: str | None = None) -> Window:
        lookback, horizon = self.info.max_len, len(self.info.task_info.scaler["std"])
        if len(x) != lookback:
            raise BadRequest(f"{where}: 'x' has {len(x)} steps; this model reads windows of {lookback} (lookback)")
        if y is None:
            return Window(x=x, series=series)
        values = as_steps(y, columns=1, where=f"{where}: 'y'")[:, 0]
        if len(values) > horizon:
            raise BadRequest(f"{where}: 'y' has {len(values)} values; this model forecasts {horizon} (horizon)")
        return Window(x=x, y=values, series=series)

    # -- answering ---------------------------------------------------------------------------
    def answer(self, items: list) -> list[dict[str, Any]]:
        """Parsed rows -> one answer row each (JSON-ready)."""
        if self.kind in ("texts", "frames"):
            columns = self._text_columns(items)
        elif self.kind == "windows":
            columns = self.window_columns([w.x for w in items], [w.y for w in items], series=[w.series for w in items])
        else:
            columns = self._sequence_columns(items)
        return [{name: json_value(values[i]) for name, values in columns.items()} for i in range(len(items))]

    def _text_columns(self, items: list) -> dict[str, list]:
        """Texts, frames or WAV files (a request may mix frames and WAVs): each kind answered as
        `predict` answers it, the rows put back in their order."""
        from pipeline.serve.text import answer

        wavs = [i for i, item in enumerate(items) if isinstance(item, Wav)]
        rest = [i for i in range(len(items)) if not isinstance(items[i], Wav)]
        columns: dict[str, list] = {}
        try:
            for where, audio in ((wavs, True), (rest, False)):
                if not where:
                    continue
                answered = answer(self.trained, [items[i].data if audio else items[i] for i in where], audio=audio)
                for name, values in answered.items():
                    column = columns.setdefault(name, [None] * len(items))
                    for i, value in zip(where, values, strict=True):
                        column[i] = value
        except DataError as err:
            raise BadRequest(str(err)) from err
        return columns

    def window_outputs(
        self, windows: list[np.ndarray], *, series: list[str | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Windows (W, L, C) in data units (and, for a model scaled per series, their series ids) ->
        the model's outputs as the predict path holds them: pred (W, H * P) in standardized
        (window-relative) units, ref and ref_scale (W,)."""
        x = np.stack(windows).astype(np.float32)  # (W, L, C)
        normalize = getattr(self.info.task_info, "window_normalize", "none")
        if normalize == "series":  # as forecast_windows._windows: the series' training moments
            scales = self.info.task_info.series_scales
            ref, ref_scale = np.array([scales[s] for s in series or [None] * len(x)], np.float64).T  # (W,), (W,)
        else:
            ref, ref_scale = window_reference(x[..., 0], normalize=normalize)  # (W,), (W,)
        if normalize != "none":  # as the training windows were cut (forecast_windows._windows)
            x[..., 0] = (x[..., 0] - ref[:, None]) / ref_scale[:, None]
        lengths = torch.full((len(x),), x.shape[1], dtype=torch.long)
        with torch.no_grad():
            pred = self.model(torch.from_numpy(x), lengths).numpy()  # (W, H * P)
        return {"pred": pred, "ref": ref, "ref_scale": ref_scale}

    def window_columns(
        self, windows: list[np.ndarray], follow: list[np.ndarray | None], *, series: list[str | None] | None = None
    ) -> dict[str, list]:
        from pipeline.tasks.forecast import forecast_columns
        from pipeline.tasks.forecast_units import in_data_units

        out = self.window_outputs(windows, series=series)
        pred, _ = in_data_units(out, self.info)  # (W, H)
        columns = forecast_columns(out, self.info, pred=pred)
        if self.info.task == "anomaly":
            columns |= self.follow_scores(out, follow)
        return columns

    def follow_scores(self, out: dict[str, np.ndarray], follow: list[np.ndarray | None]) -> dict[str, list]:
        """Anomaly: each window's forecasts scored against the values that followed it, and flagged."""
        h = len(self.info.task_info.scaler["std"])
        y = np.full((len(follow), h), np.nan)  # (W, H) data units
        for i, values in enumerate(follow):
            if values is not None:
                y[i, : len(values)] = values
        error = self.step_errors(out, y)  # (W, H)
        threshold = self.info.task_info.threshold
        scores = [None if v is None else error[i, : len(v)] for i, v in enumerate(follow)]
        return {"score": scores, "flag": [None if e is None else e > threshold for e in scores]}

    def step_errors(self, out: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        """Anomaly: forecasts `out` (W windows) and values y (W, H) in data units (NaN: not yet seen) ->
        each step's error (W, H) in the model's units, as predict computes it (NaN where y is)."""
        from pipeline.tasks.anomaly import step_errors

        _, error = step_errors({"pred": out["pred"], "y": standardized_target(y, out, self.info)}, self.info)
        return np.where(np.isnan(y), np.nan, error)

    def _sequence_columns(self, items: list[np.ndarray]) -> dict[str, Any]:
        rows = pa.table({"x": _ragged([s.astype(np.float32) for s in items])})
        batch = collate_for(self.info)(rows)
        with torch.no_grad():
            out = {"pred": self.model(batch["x"], batch["lengths"]).numpy()}
        out |= {k: v.numpy() for k, v in batch.items() if k not in ("x", "lengths")}  # generate: next steps
        return self.task.outputs(out, self.info)


def standardized_target(y: np.ndarray, out: dict[str, np.ndarray], info) -> np.ndarray:
    """Values (W, H) in data units -> the model's target units, as forecast_windows._windows scales them."""
    own = info.task_info
    normalize = getattr(own, "window_normalize", "none")
    if normalize != "none":
        y = (y - out["ref"][:, None]) / out["ref_scale"][:, None]
    return ((y - info.input_mean[0]) / info.input_std[0]).astype(np.float32)


def as_steps(value: Any, *, columns: int | None, where: str) -> np.ndarray:
    """A JSON list of numbers (one column) or of equal-length number lists -> (T, C) float64, finite."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{where} must be a non-empty list of numbers or of number lists")
    if len(value) > MAX_STEPS:
        raise BadRequest(f"{where} has {len(value)} steps, more than {MAX_STEPS}; send a shorter sequence", status=413)
    flat = all(_is_number(v) for v in value)
    if not flat and not all(isinstance(v, list) and all(_is_number(u) for u in v) for v in value):
        raise BadRequest(f"{where} must be a list of numbers, or of number lists (one per step)")
    try:
        x = np.asarray([[v] for v in value] if flat else value, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise BadRequest(f"{where} is not a (steps, values) list of numbers ({str(err)[:80]})") from err
    if x.ndim != 2 or x.shape[1] == 0:
        raise BadRequest(f"{where} has shape {list(x.shape)}; send (steps, values) lists of numbers")
    if columns is not None and x.shape[1] != columns:
        raise BadRequest(f"{where} has {x.shape[1]} value(s) per step; this model reads {columns}")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        raise BadRequest(f"{where} has a missing or non-finite value at step {int(bad[0][0])}; send finite numbers")
    return x


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _ragged(seqs: list[np.ndarray]) -> pa.Array:
    if len({s.shape for s in seqs}) == 1:
        return sequence_table(np.stack(seqs), np.zeros(len(seqs))).column("x")
    from pipeline.data.sources.table import ragged_sequence_table

    return ragged_sequence_table(seqs, np.zeros(len(seqs))).column("x")


def json_value(value: Any) -> Any:
    """numpy scalars and arrays -> JSON (NaN -> null)."""
    if isinstance(value, np.ndarray | list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
