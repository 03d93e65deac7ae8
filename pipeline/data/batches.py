"""Worker shard -> batches: the Arrow collate that pads each batch to its own longest sequence, the
training split in a new order every epoch (`TrainBatches`), and the validation rows of each worker
(`strided_batches`) kept in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data
import torch
from ray.data.collate_fn import ArrowBatchCollateFn

from pipeline.data.shuffle import length_batches, worker_positions, worker_rows
from pipeline.data.transforms import float_targets, label_sequences, next_step, sequences_to_arrays, teacher_forcing

if TYPE_CHECKING:
    from pipeline.tasks import DataInfo, TargetKind

Batching = Literal["shuffled", "by_length"]

# evaluation-only columns: forecast's seasonal-naive baselines (without and with drift), MASE scale and
# window reference (last value, or mean and std); anomaly's labels; text classification's baselines' class ids
EXTRA_COLUMNS = ("baseline", "drift", "ets", "scale", "ref", "ref_scale", "label", "baseline_tfidf", "baseline_lexicon")


class SequenceBatch(ArrowBatchCollateFn):
    """Arrow rows (x, y) -> {"x": (B, T_max, C) float32, "lengths": (B,) int64, "y": (B, O) or (B,)}."""

    def __init__(self, target: TargetKind):
        super().__init__()
        self.target = target

    def __call__(self, batch: pa.Table) -> dict[str, torch.Tensor]:
        arrays = sequences_to_arrays(batch, sequence_column="x")
        if self.target in ("tokens", "frames"):
            return {k: torch.from_numpy(v) for k, v in next_step(arrays, target=self.target).items()}
        out = {"x": torch.from_numpy(arrays["x"]), "lengths": torch.from_numpy(arrays["lengths"])}
        if self.target == "labels":  # transcribe: label ids, 0 (CTC's blank) past each end
            if "y" in batch.column_names:
                out["y"] = torch.from_numpy(label_sequences(batch, column="y"))
            return out
        if self.target == "sequence":  # translate: the decoder's input and target
            if "y" in batch.column_names:
                out |= {k: torch.from_numpy(v) for k, v in teacher_forcing(batch, column="y").items()}
            return out
        if "y" in batch.column_names:  # absent when predicting on data without targets
            if self.target == "class":
                y = np.array(batch.column("y").to_numpy(), dtype=np.int64)  # (B,), writable
            else:
                y = float_targets(batch, column="y")  # (B, O)
            out["y"] = torch.from_numpy(y)
        for name in (
            EXTRA_COLUMNS
        ):  # evaluation-only columns (forecast: seasonal-naive baseline, MASE scale, last value; anomaly: labels)
            if name in batch.column_names:
                out[name] = torch.from_numpy(float_targets(batch, column=name))
        return out

    def whole(self, table: pa.Table) -> CollatedSplit:
        """A whole split collated at once, with each row's own width on every padded axis, so that
        any batch of it can be cut out (`CollatedSplit.batch`) equal to what __call__ makes of those rows."""
        from pipeline.data.tokenize import PAD_ID

        tensors = self(table)
        lengths = tensors["lengths"].numpy()  # (N,) steps of x (for tokens/frames: of the inputs)
        widths = {"x": lengths}
        if self.target in ("tokens", "frames"):
            widths["y"] = lengths  # (N, T-1[, K]) next-step targets
        elif self.target == "labels" and "y" in tensors:
            widths["y"] = (tensors["y"] != 0).sum(1).numpy()  # (N,) label ids (0: CTC's blank, never a label)
        elif self.target == "sequence" and "y" in tensors:
            widths["y"] = widths["y_in"] = (tensors["y"] != PAD_ID).sum(1).numpy()  # (N,) ids + </s>
        return CollatedSplit(tensors=tensors, widths=widths)


@dataclass(frozen=True)
class CollatedSplit:
    """A split as tensors, every padded axis (axis 1) as long as the split's longest row, and for each
    padded tensor the width each row needs there. Cutting a batch out of it costs a gather; taking the
    rows from Arrow and collating them cost ~0.4 ms a batch here, 3% of a small LSTM's step (B1)."""

    tensors: dict[str, torch.Tensor]
    widths: dict[str, np.ndarray]  # tensor name -> (N,) width of each row on axis 1

    @property
    def num_rows(self) -> int:
        return len(self.widths["x"])

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """These rows as one batch, each padded axis cut to the batch's own longest row."""
        idx = torch.as_tensor(rows, dtype=torch.int64)  # (B,)
        return {
            name: t[idx, : int(self.widths[name][rows].max())] if name in self.widths else t[idx]
            for name, t in self.tensors.items()
        }


def model_args(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """What the model's forward takes from a batch: (x, lengths), and the decoder's input for translate."""
    if "y_in" in batch:
        return batch["x"], batch["lengths"], batch["y_in"]
    return batch["x"], batch["lengths"]


def collate_for(info: DataInfo) -> SequenceBatch:
    """The collate for a prepared dataset (its DataInfo)."""
    return SequenceBatch(info.target)


def iter_batches(ds, *, info: DataInfo, batch_size: int, device: torch.device | str = "cpu", pin_memory: bool = False):
    """Batches of a dataset or a worker's shard (DataIterator), collated and moved to `device`.
    `pin_memory` (GPU training) pins the CPU batches in the collate threads, two batches ahead, so
    the copy to the GPU can overlap compute (`to_device(..., non_blocking=True)`)."""
    return ds.iter_torch_batches(
        batch_size=batch_size,
        collate_fn=collate_for(info),
        device=device,
        pin_memory=pin_memory,
        prefetch_batches=2 if pin_memory else 1,
    )


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A CPU batch on the training device (a no-op on CPU; asynchronous from pinned memory)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _pinned(batch: dict[str, torch.Tensor], pin: bool) -> dict[str, torch.Tensor]:
    return {k: v.pin_memory() for k, v in batch.items()} if pin else batch


class TrainBatches:
    """This worker's training batches, in a new order every epoch (`pipeline.data.shuffle`).

    Every worker reads the whole training split (Ray Train does not split it: `build_trainer`). If
    the split's Arrow rows fit `budget_mb`, they are kept after the first read, collated at once
    (`CollatedSplit`) if that fits too, and each epoch cuts this worker's rows in the epoch's order
    out of them: no Ray Data after the first epoch, no collate per batch.
    Otherwise the split is streamed every epoch; the worker keeps its own rows of the epoch and emits
    them in their order within windows of `window_batches` batches (a shuffle buffer). Either way the
    rows and their order depend only on the seed, the epoch, the rank and the world size.
    """

    def __init__(
        self,
        iterator,
        *,
        info: DataInfo,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
        budget_mb: float,
        window_batches: int = 64,
        pin_memory: bool = False,
        batching: Batching = "shuffled",
    ):
        self.iterator = iterator  # a DataIterator over the whole training split, in order
        self.collate = collate_for(info)
        self.rows_total = info.num_rows["train"]
        self.batch_size, self.window = batch_size, batch_size * window_batches
        self.order = {"seed": seed, "rank": rank, "world": world}
        self.budget = budget_mb * 2**20
        self.pin = pin_memory
        # the split, once read, if it fits the budget: collated (or, if padding it would not fit, as Arrow rows)
        self.rows: CollatedSplit | pa.Table | None = None
        self.lengths: np.ndarray | None = None  # (N,) steps of each row, once read
        self.streaming = budget_mb == 0
        self.batching = batching

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        if self.rows is None and not self.streaming:
            self.rows = self._keep()
        if self.rows is None:
            yield from self._streamed(epoch)
            return
        mine = worker_rows(self.rows.num_rows, epoch=epoch, **self.order)
        for batch in self._cut(mine, lengths=self.lengths, epoch=epoch, window=0):
            if isinstance(self.rows, CollatedSplit):
                yield _pinned(self.rows.batch(batch), self.pin)
            else:
                yield _pinned(self.collate(self.rows.take(batch)), self.pin)

    def _keep(self) -> CollatedSplit | pa.Table | None:
        """The whole split, read once: collated if its padded tensors fit the budget (bounded from above
        by the Arrow bytes, doubled for next-step targets, times the padding factor), else as Arrow rows."""
        rows = self._read_all()
        if rows is None:
            return None
        self.lengths = _lengths(rows)
        padding = len(self.lengths) * self.lengths.max(initial=1) / max(int(self.lengths.sum()), 1)
        return self.collate.whole(rows) if 2 * rows.nbytes * padding <= self.budget else rows

    def _cut(self, rows: np.ndarray, *, lengths: np.ndarray, epoch: int, window: int) -> list[np.ndarray]:
        """Rows (indices, in this worker's order) -> batches: consecutive, or by length (`batching`)."""
        if self.batching == "shuffled":
            return [rows[start : start + self.batch_size] for start in range(0, len(rows), self.batch_size)]
        o = self.order
        rng = np.random.default_rng([o["seed"], epoch, o["rank"], window, 1])  # new every epoch and window
        return [rows[b] for b in length_batches(lengths[rows], batch_size=self.batch_size, rng=rng)]

    def _batches(self):
        return self.iterator.iter_batches(batch_size=4096, batch_format="pyarrow", prefetch_batches=1)

    def _read_all(self) -> pa.Table | None:
        parts, size = [], 0
        for part in self._batches():
            size += part.nbytes
            if size > self.budget:
                self.streaming = True
                return None
            parts.append(part)
        return pa.concat_tables(parts).combine_chunks()

    def _streamed(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """Only full batches leave a window (its remainder waits for the next one), so every worker
        makes ceil(rows / batch_size) batches whatever its windows: DDP ranks step together."""
        places = worker_positions(self.rows_total, epoch=epoch, **self.order)  # (N,) place in my order, -1: not mine
        window: list[tuple[np.ndarray, pa.Table]] = []
        held, seen, flushed = 0, 0, 0
        for part in self._batches():
            where = places[seen : seen + part.num_rows]
            seen += part.num_rows
            keep = np.flatnonzero(where >= 0)
            window.append((where[keep], part.take(keep)))
            held += len(keep)
            if held >= self.window:
                rest = yield from self._flush(window, full_only=True, epoch=epoch, index=flushed)
                window, held, flushed = [rest], rest[1].num_rows, flushed + 1
        if seen != self.rows_total:
            raise RuntimeError(f"the training split streamed {seen} rows, {self.rows_total} expected")
        yield from self._flush(window, full_only=False, epoch=epoch, index=flushed)

    def _flush(self, window: list[tuple[np.ndarray, pa.Table]], *, full_only: bool, epoch: int, index: int):
        """The window's rows in their order (or by length), as batches; returns the rows of an
        unfilled last batch."""
        places = np.concatenate([w for w, _ in window])
        order = np.argsort(places, kind="stable")
        rows, places = pa.concat_tables([t for _, t in window]).take(order), places[order]
        end = rows.num_rows - rows.num_rows % self.batch_size if full_only else rows.num_rows
        for batch in self._cut(np.arange(end), lengths=_lengths(rows), epoch=epoch, window=index):
            yield _pinned(self.collate(rows.take(batch)), self.pin)
        return places[end:], rows.slice(end)


def _lengths(rows: pa.Table) -> np.ndarray:
    """(N,) steps (or tokens) of each row's sequence."""
    return pc.list_value_length(rows.column("x")).to_numpy(zero_copy_only=False).astype(np.int64)


def whole_split(ds: ray.data.Dataset, *, name: str) -> ray.data.DataIterator:
    """A materialized split as one worker reads it: all of it, in its stored order.

    The driver hands the splits to the workers in their spec, not through Ray Train's `datasets=`:
    neither is split by Ray Train (each worker takes its own rows: `TrainBatches`,
    `strided_batches`), and Ray Train's dataset integration costs a DatasetManager actor, a Python
    process importing Ray, per run. This is what that actor would hand each worker for a split it
    does not split (`ray.train.DataConfig.configure`): a copy of the dataset with its own execution
    options, and its iterator."""
    ds = ray.data.Dataset.copy(ds)
    ds.set_name(ds.name or name)
    ds.context.execution_options = ray.data.ExecutionOptions(preserve_order=True)
    return ds.iterator()


def strided_batches(iterator, *, info: DataInfo, batch_size: int, rank: int, world: int, pin_memory: bool = False):
    """This worker's rows of a whole split (rows rank, rank + world, ... in stored order), collated.

    Every worker reads the whole validation split (Ray Train does not split it, as for training:
    a split dataset costs a SplitCoordinator actor, one more process per run); across the ranks
    every row is evaluated exactly once."""
    collate, seen, held = collate_for(info), 0, []
    for part in iterator.iter_batches(batch_size=4096, batch_format="pyarrow", prefetch_batches=1):
        first = (rank - seen) % world  # this part's first row that is mine
        held.append(part.take(np.arange(first, part.num_rows, world)))
        seen += part.num_rows
        rows = pa.concat_tables(held)
        end = rows.num_rows - rows.num_rows % batch_size
        for start in range(0, end, batch_size):
            yield _pinned(collate(rows.slice(start, batch_size)), pin_memory)
        held = [rows.slice(end)]
    rest = pa.concat_tables(held)
    if rest.num_rows:
        yield _pinned(collate(rest), pin_memory)


class ShardCache:
    """A worker's validation shard as collated batches, kept in memory after the first epoch if they fit.

    Ray Data streams the shard every epoch (block fetch, slicing, collate: ~1 ms per batch here, a
    tenth of a small LSTM's step); a shard that fits `budget_mb` is streamed once and then replayed
    from memory (order does not matter for validation: its sums are all-reduced). A shard over budget
    is streamed every epoch and nothing is kept.
    """

    def __init__(self, stream, *, budget_mb: float):
        self.stream = stream  # () -> iterable of batches (a fresh pass over the shard)
        self.budget = budget_mb * 2**20
        self.batches: list[dict[str, torch.Tensor]] | None = None
        self.over_budget = budget_mb == 0

    def __iter__(self):
        if self.batches is not None:
            yield from self.batches
            return
        kept: list[dict[str, torch.Tensor]] = []
        size = 0
        for batch in self.stream():
            if not self.over_budget:
                size += sum(t.element_size() * t.nelement() for t in batch.values())
                self.over_budget = size > self.budget
                if self.over_budget:
                    kept = []  # stream from now on
                else:
                    kept.append(batch)
            yield batch
        if not self.over_budget:  # only a complete pass is kept (a consumer that stops early keeps nothing)
            self.batches = kept
