"""The slow mode probe: what a Ray Train worker shares its core (and its GIL) with, run by run.

    .venv/bin/python -m benchmarks.slowmode [--runs 8] [--epochs 8] [--flush-denormal]

Each repetition trains B1's workload twice, side by side: a bare PyTorch loop in a fresh process,
then the pipeline on 1 Ray Train worker. While each runs, a sampler thread reads /proc every 0.5 s:
the CPU seconds of every thread of the training process (by thread name), of every other process on
the machine, the machine's steal time, and the training process's context switches and migrations
(/proc/<pid>/sched). In the middle of each pipeline run, `py-spy dump` prints every thread's stack.
What it prints per run: the sequences/s of both sides, the training thread's CPU share, which other
threads and processes ran and for how long, and the scheduler's counts per second.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SCHED_KEYS = ("nr_switches", "nr_voluntary_switches", "nr_involuntary_switches", "se.nr_migrations")


def _cpu(stat_line: str) -> float:
    fields = stat_line.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of process `pid` (threads of one name summed)."""
    out: dict[str, float] = defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        stat, comm = _read(f"/proc/{pid}/task/{tid}/stat"), _read(f"/proc/{pid}/task/{tid}/comm")
        if stat and comm:
            out["main" if tid == str(pid) else comm.strip()] += _cpu(stat)
    return dict(out)


def processes() -> dict[int, tuple[str, float]]:
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat, cmd = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/cmdline")
        if stat and cmd is not None:
            out[int(pid)] = (cmd.replace("\0", " ").strip()[:300] or stat.split("(")[1].split(")")[0], _cpu(stat))
    return out


def sched(pid: int) -> dict[str, float]:
    text = _read(f"/proc/{pid}/sched") or ""
    found = {k: re.search(rf"^{re.escape(k)}\s*:\s*([\d.]+)", text, re.MULTILINE) for k in SCHED_KEYS}
    return {k: float(m.group(1)) for k, m in found.items() if m}


def steal() -> tuple[float, float]:
    """(steal, total) jiffies of all CPUs."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields)


@dataclass
class Sample:
    """Deltas over one run of the process under study and of everything else on the machine."""

    wall_s: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)  # CPU s per thread of the training process
    others: dict[str, float] = field(default_factory=dict)  # CPU s per other process (command line)
    sched: dict[str, float] = field(default_factory=dict)
    steal_pct: float = 0.0


class Sampler:
    """Samples /proc in a thread until stopped; `find` names the training process once it exists."""

    def __init__(self, find) -> None:
        self.find, self.stop_flag, self.pid = find, threading.Event(), None
        self.first: dict = {}
        self.last: dict = {}
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        self.thread.join()

    def _snap(self) -> dict:
        return {
            "t": time.perf_counter(),
            "threads": threads(self.pid),
            "procs": processes(),
            "sched": sched(self.pid),
            "steal": steal(),
        }

    def _loop(self) -> None:
        while not self.stop_flag.is_set():
            if self.pid is None:
                self.pid = self.find()
            elif os.path.exists(f"/proc/{self.pid}"):
                snap = self._snap()
                if snap["threads"]:
                    self.first = self.first or snap
                    self.last = snap
            self.stop_flag.wait(0.5)

    def result(self) -> Sample:
        a, b = self.first, self.last
        if not a or a is b:
            return Sample()
        others = {}
        for pid, (cmd, cpu) in b["procs"].items():
            if pid in (self.pid, os.getpid()):
                continue
            before = a["procs"].get(pid, (cmd, 0.0))[1]
            if cpu - before >= 0.05:
                others[f"{cmd[:70]} [{pid}]"] = cpu - before
        ds, dt = b["steal"][0] - a["steal"][0], b["steal"][1] - a["steal"][1]
        return Sample(
            wall_s=b["t"] - a["t"],
            threads={k: v - a["threads"].get(k, 0.0) for k, v in b["threads"].items()},
            others=others,
            sched={k: b["sched"][k] - a["sched"].get(k, 0.0) for k in b["sched"]},
            steal_pct=100 * ds / dt if dt else 0.0,
        )


def _by_cmdline(prefix: str, *, exclude: set[int], holding: str = ""):
    def find() -> int | None:
        for pid, (cmd, _) in processes().items():
            if cmd.startswith(prefix) and holding in cmd and pid not in exclude:
                return pid
        return None

    return find


def report(label: str, speeds: list[float], sample: Sample) -> str:
    wall = sample.wall_s or 1.0
    main = sample.threads.get("main", 0.0)
    rest = sorted(((v, k) for k, v in sample.threads.items() if k != "main" and v >= 0.05), reverse=True)
    others = sorted(((v, k) for k, v in sample.others.items()), reverse=True)[:6]
    rates = ", ".join(f"{k.split('.')[-1]} {v / wall:.0f}/s" for k, v in sample.sched.items())
    return "\n".join(
        [
            f"{label}: {statistics.median(speeds):.0f} seq/s (epochs: {', '.join(f'{s:.0f}' for s in speeds)})",
            f"  training process over {wall:.1f} s: main thread {100 * main / wall:.0f}% of a core; "
            + (", ".join(f"{k} {v:.2f} s" for v, k in rest) or "no other thread ran"),
            f"  scheduler: {rates}; steal {sample.steal_pct:.1f}%",
            "  other processes (CPU s): " + ("; ".join(f"{k} {v:.2f}" for v, k in others) or "none"),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dump", action="store_true", help="py-spy dump the Ray worker mid-run")
    args = parser.parse_args(argv)

    from benchmarks import throughput
    from pipeline.cluster.connect import connect
    from pipeline.data.ingest import load_splits

    work = tempfile.mkdtemp(prefix="slowmode-")
    w = throughput.Workload(epochs=args.epochs)
    cfg = w.config(workers=1, workdir=work)
    connect()
    splits = load_splits(cfg)
    batches = throughput.collated(splits, batch_size=w.batch_size)
    for run in range(args.runs):
        before = set(processes())
        with Sampler(_by_cmdline(sys.executable, exclude=before, holding="spawn_main")) as s:
            bare = throughput.spawned_epochs(cfg, splits.info, batches, epochs=args.epochs, world=1)[1:]
        print(report(f"run {run} bare   ", bare, s.result()), flush=True)
        with Sampler(_by_cmdline("ray::RayTrainWorker", exclude=set())) as s:
            if args.dump:
                threading.Timer(8.0, lambda: _dump(s.pid)).start()
            ray1 = throughput.pipeline_epochs(cfg, splits)[1:]
        print(report(f"run {run} ray    ", ray1, s.result()), flush=True)
        print(f"run {run} ratio {statistics.median(ray1) / statistics.median(bare):.2f}x", flush=True)


def _dump(pid: int | None) -> None:
    if pid:
        spy = Path(sys.executable).parent / "py-spy"
        out = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True)
        print(out.stdout or out.stderr, flush=True)


if __name__ == "__main__":
    main()
