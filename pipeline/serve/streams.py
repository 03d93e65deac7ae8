"""Streaming answers for forecast and anomaly models: a client sends a stream's newest value(s) and
gets the forecast (and, for anomaly, each value's score and flag) without resending the window.

A stream starts with `{"stream": ID, "window": [the last lookback steps]}` (plus `"series": its id`
for a model scaled per series); later requests send `{"stream": ID, "values": [newest steps]}` (both
may come together: the window first). The server
keeps per stream its window (lookback x features floats) and, for anomaly, the forecasts still
waiting for their values (up to horizon of them), so each value is scored by the mean error of every
forecast made for it, as `lstmpipe predict` scores a step of a whole series.

Memory is bounded: at most `max_streams` streams (the least recently used is dropped when a new one
comes), and a stream idle for `ttl_s` seconds is dropped. A dropped or never-started stream answers
HTTP 404 saying to resend its window; nothing is guessed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.serve.online import BadRequest, OnlineModel, as_steps, json_value

MAX_ID_CHARS = 200


@dataclass
class Pending:
    """A forecast made when the stream's value `first` was next: its outputs (model units)."""

    first: int
    out: dict[str, np.ndarray]  # pred (1, H * P), ref (1,), ref_scale (1,)


@dataclass
class Stream:
    window: np.ndarray  # (L, C) data units, newest last
    series: str | None = None  # its series id (data.window.normalize series)
    seen: int = 0  # values received since the window: the next value's step
    pending: list[Pending] = field(default_factory=list)
    touched: float = 0.0


@dataclass(frozen=True)
class StreamLimits:
    max_streams: int = 10_000
    ttl_s: float = 3600.0
    max_values: int = 1000  # values in one request


class Streams:
    def __init__(self, online: OnlineModel, *, limits: StreamLimits, clock: Callable[[], float] = time.monotonic):
        if online.kind != "windows":
            raise BadRequest(f"streaming answers forecast and anomaly models, not {online.info.task}", status=404)
        self.online, self.limits, self.clock = online, limits, clock
        self.held: OrderedDict[str, Stream] = OrderedDict()  # least recently used first
        self.evicted = 0
        self.lookback = online.info.max_len
        self.horizon = len(online.info.task_info.scaler["std"])

    def update(self, body: Any) -> dict[str, Any]:
        stream_id, window, values, series = self._parse(body)
        now = self.clock()
        self._expire(now)
        answers = []
        if window is not None:
            stream = self._start(stream_id, window, series=series)
            first = self._forecast(stream)  # anomaly: it forecasts the values to come
            if values is None:
                answers.append(first)
        else:
            stream = self.held.get(stream_id)
            if stream is None:
                raise BadRequest(
                    f"stream '{stream_id}' is not held (new, idle over {self.limits.ttl_s:g} s, or dropped as the "
                    f"least recently used of {self.limits.max_streams}); resend its last {self.lookback} steps as "
                    "'window'",
                    status=404,
                )
        self.held.move_to_end(stream_id)
        stream.touched = now
        for value in values if values is not None else []:
            answers.append(self._step(stream, value))
        return {"stream": stream_id, "answers": answers}

    def _parse(self, body: Any) -> tuple[str, np.ndarray | None, np.ndarray | None, str | None]:
        if not isinstance(body, dict) or not isinstance(body.get("stream"), str):
            raise BadRequest(
                'send {"stream": ID, "window": [...]} to start a stream, then {"stream": ID, "values": [...]}'
            )
        stream_id = body["stream"]
        if not 0 < len(stream_id) <= MAX_ID_CHARS:
            raise BadRequest(f"'stream' must be 1 to {MAX_ID_CHARS} characters")
        extra = sorted(set(body) - {"stream", "window", "values", *(("series",) if self.online.by_series else ())})
        if extra:
            raise BadRequest(f"unknown field '{extra[0]}'; send 'stream' with 'window' and/or 'values'")
        series = None
        if self.online.by_series and "window" in body:
            series = self.online.series_of(body, where=f"stream '{stream_id}'")
        if "window" not in body and "values" not in body:
            raise BadRequest(
                f"stream '{stream_id}': send 'values' (newest steps) or 'window' (the last {self.lookback})"
            )
        columns = self.online.info.input_size
        window = values = None
        if "window" in body:
            window = as_steps(body["window"], columns=columns, where=f"stream '{stream_id}': 'window'")
            if len(window) < self.lookback:
                raise BadRequest(
                    f"stream '{stream_id}': 'window' has {len(window)} steps; send at least the last {self.lookback}"
                )
        if "values" in body:
            values = as_steps(body["values"], columns=columns, where=f"stream '{stream_id}': 'values'")
            if len(values) > self.limits.max_values:
                raise BadRequest(
                    f"stream '{stream_id}': {len(values)} values in one request, more than {self.limits.max_values}; "
                    "send them in parts",
                    status=413,
                )
        return stream_id, window, values, series

    def _expire(self, now: float) -> None:
        while self.held:
            oldest_id, oldest = next(iter(self.held.items()))
            if now - oldest.touched <= self.limits.ttl_s:
                return
            del self.held[oldest_id]
            self.evicted += 1

    def _start(self, stream_id: str, window: np.ndarray, *, series: str | None = None) -> Stream:
        if stream_id not in self.held and len(self.held) >= self.limits.max_streams:
            self.held.popitem(last=False)  # the least recently used
            self.evicted += 1
        stream = Stream(window=window[-self.lookback :].copy(), series=series)
        self.held[stream_id] = stream
        return stream

    def _forecast(self, stream: Stream) -> dict[str, Any]:
        """The forecast from the stream's window; anomaly keeps it to score the values it forecast."""
        out = self.online.window_outputs([stream.window], series=[stream.series])
        if self.online.info.task == "anomaly":
            stream.pending = [p for p in stream.pending if stream.seen - p.first < self.horizon]
            stream.pending.append(Pending(first=stream.seen, out=out))
        from pipeline.tasks.forecast import forecast_columns
        from pipeline.tasks.forecast_units import in_data_units

        pred, _ = in_data_units(out, self.online.info)
        return {name: json_value(v[0]) for name, v in forecast_columns(out, self.online.info, pred=pred).items()}

    def _step(self, stream: Stream, value: np.ndarray) -> dict[str, Any]:
        """One new step: scored against the forecasts made for it (anomaly), then the next forecast."""
        answer: dict[str, Any] = {"step": stream.seen}
        if self.online.info.task == "anomaly":
            answer |= self._score(stream, float(value[0]))
        stream.window = np.concatenate([stream.window[1:], value[None, :]])
        stream.seen += 1
        return answer | self._forecast(stream)

    def _score(self, stream: Stream, value: float) -> dict[str, Any]:
        """The value's score: the mean error of the forecasts covering this step (1..horizon ago)."""
        covering = [p for p in stream.pending if 0 <= stream.seen - p.first < self.horizon]
        errors = []
        for p in covering:
            y = np.full((1, self.horizon), np.nan)
            y[0, stream.seen - p.first] = value
            errors.append(self.online.step_errors(p.out, y)[0, stream.seen - p.first])
        score = float(np.mean(errors))
        return {
            "value": value,
            "score": score,
            "flag": score > self.online.info.task_info.threshold,
            "forecasts": len(errors),
        }

    def bytes_held(self) -> int:
        """Memory held by the streams' arrays (windows and pending forecasts)."""
        total = 0
        for stream in self.held.values():
            total += stream.window.nbytes + sum(sum(a.nbytes for a in p.out.values()) for p in stream.pending)
        return total
