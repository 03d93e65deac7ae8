"""The slow mode probe: where a Ray Train worker's time goes, run by run, beside a bare loop.

    .venv/bin/python -m benchmarks.slowmode [--runs 8] [--epochs 8] [--flush-denormal on|alternate] [--dump]

Each repetition trains B1's workload twice, side by side: a bare PyTorch loop in a fresh process,
then the pipeline on 1 Ray Train worker. While each runs, a sampler thread reads /proc every 0.5 s:
the CPU seconds of every thread of the training process, of every other process on the machine, the
machine's steal time, the training process's context switches and migrations (/proc/<pid>/sched),
its minor page faults and its user and system time. The training thread's floating-point mode (FTZ,
DAZ, read from MXCSR) is noted; `--dump` prints every thread's stack mid-run (py-spy).

What it found (docs/performance.md, "The slow mode"): slow runs were not short of CPU, GIL or cores
(the training thread ran 92-95% of a core, no other thread or process took more than ~1 s) and not
denormals (as slow with FTZ and DAZ on); they faulted 76,000-129,000 pages a second (2.9-5.0 s of
system time) where fast runs fault ~6,000: glibc handing the training thread's freed memory back to
the kernel every step. With the thresholds fixed (pipeline.train.host_memory, measured A/B with
`--keep-freed alternate` at commit d4387f1) no run was slow.
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
    """CPU seconds per thread of process `pid`, keyed "name [tid]" ("main" for the process's first)."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        stat, comm = _read(f"/proc/{pid}/task/{tid}/stat"), _read(f"/proc/{pid}/task/{tid}/comm")
        if stat and comm:
            out["main" if tid == str(pid) else f"{comm.strip()} [{tid}]"] = _cpu(stat)
    return out


def processes() -> dict[int, tuple[str, float]]:
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat, cmd = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/cmdline")
        if stat and cmd is not None:
            out[int(pid)] = (cmd.replace("\0", " ").strip()[:300] or stat.split("(")[1].split(")")[0], _cpu(stat))
    return out


def faults_and_sys(pid: int) -> dict[str, float]:
    """Minor page faults and user/system CPU seconds of process `pid` (all its threads)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return {}
    f = stat.rsplit(")", 1)[1].split()
    return {"minflt": float(f[7]), "user_s": int(f[11]) / TICKS, "sys_s": int(f[12]) / TICKS}


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
        self.thread_first: dict[str, float] = {}  # threads come and go: each one's first and last reading
        self.thread_last: dict[str, float] = {}
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
            "sched": sched(self.pid) | faults_and_sys(self.pid),
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
                    for name, cpu in snap["threads"].items():
                        self.thread_first.setdefault(name, cpu if snap is not self.first else cpu)
                        self.thread_last[name] = cpu
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
            threads={k: v - a["threads"].get(k, 0.0) for k, v in self.thread_last.items()},
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


MXCSR_C = 'unsigned int mxcsr(void) { unsigned int r; __asm__ volatile("stmxcsr %0" : "=m"(r)); return r; }'
FTZ, DAZ = 1 << 15, 1 << 6  # MXCSR bits: flush results to zero, read denormal inputs as zero


def mxcsr_library(directory: str) -> str | None:
    """A tiny shared library that reads the calling thread's MXCSR (x86-64, gcc); None without gcc."""
    src, lib = Path(directory) / "mxcsr.c", Path(directory) / "mxcsr.so"
    src.write_text(MXCSR_C)
    done = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib)], capture_output=True)
    return str(lib) if done.returncode == 0 else None


def probed_loop(config: dict) -> None:
    """The pipeline's training loop with the training thread's floating-point mode noted (and set, for
    --flush-denormal on) first: MXCSR is per thread, and Ray Train runs the loop in a thread of its own."""
    import ctypes

    import torch

    from pipeline.train.worker import train_loop_per_worker

    probe = config.pop("probe")
    if probe["flush_denormal"] == "on":
        torch.set_flush_denormal(True)
    if probe["library"]:
        bits = ctypes.CDLL(probe["library"]).mxcsr()
        Path(probe["out"]).write_text(f"FTZ={int(bool(bits & FTZ))} DAZ={int(bool(bits & DAZ))} mxcsr={bits:#06x}")
    train_loop_per_worker(config)


def probed_epochs(cfg, splits, *, probe: dict) -> list[float]:
    """throughput.pipeline_epochs with the probed loop."""
    from pipeline.train.driver import build_trainer, fit, worker_spec

    spec = worker_spec(cfg, splits, run_id=None, tracking_uri="")
    with tempfile.TemporaryDirectory() as storage:
        trainer = build_trainer(cfg, spec=spec, name=f"slowmode-{time.time_ns()}", storage=storage)
        trainer.train_loop_per_worker = probed_loop
        trainer.train_loop_config = spec.as_loop_config() | {"probe": probe}
        outcome = fit(trainer, cfg)
    return [m["train_seq_per_s"] for m in outcome.history]


def report(label: str, speeds: list[float], sample: Sample) -> str:
    wall = sample.wall_s or 1.0
    busiest = max(sample.threads.items(), key=lambda kv: kv[1], default=("none", 0.0))
    rest = sorted(((v, k) for k, v in sample.threads.items() if k != busiest[0] and v >= 0.05), reverse=True)
    others = sorted(((v, k) for k, v in sample.others.items()), reverse=True)[:6]
    rates = ", ".join(f"{k.split('.')[-1]} {v / wall:.0f}/s" for k, v in sample.sched.items() if not k.endswith("_s"))
    rates += f"; user {sample.sched.get('user_s', 0):.1f} s, system {sample.sched.get('sys_s', 0):.1f} s"
    return "\n".join(
        [
            f"{label}: {statistics.median(speeds):.0f} seq/s (epochs: {', '.join(f'{s:.0f}' for s in speeds)})",
            f"  training process over {wall:.1f} s: busiest thread ({busiest[0]}) {100 * busiest[1] / wall:.0f}% of a "
            "core; others (CPU s): " + (", ".join(f"{k} {v:.2f}" for v, k in rest) or "none over 0.05"),
            f"  scheduler: {rates}; steal {sample.steal_pct:.1f}%",
            "  other processes (CPU s): " + ("; ".join(f"{k} {v:.2f}" for v, k in others) or "none"),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dump", action="store_true", help="py-spy dump the Ray worker mid-run")
    parser.add_argument(
        "--flush-denormal",
        choices=["off", "on", "alternate"],
        default="off",
        help="the Ray worker's training thread flushes denormals to zero (alternate: every other run)",
    )
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
    library = mxcsr_library(work)
    for run in range(args.runs):
        flush = args.flush_denormal if args.flush_denormal != "alternate" else ("on" if run % 2 else "off")
        probe = {"flush_denormal": flush, "library": library, "out": f"{work}/mxcsr-{run}.txt"}
        before = set(processes())
        with Sampler(_by_cmdline(sys.executable, exclude=before, holding="spawn_main")) as s:
            bare = throughput.spawned_epochs(cfg, splits.info, batches, epochs=args.epochs, world=1)[1:]
        print(report(f"run {run} bare   ", bare, s.result()), flush=True)
        with Sampler(_by_cmdline("ray::RayTrainWorker", exclude=set())) as s:
            if args.dump:
                threading.Timer(16.0, lambda: _dump(s.pid)).start()
            ray1 = probed_epochs(cfg, splits, probe=probe)[1:]
        mode = Path(probe["out"]).read_text() if Path(probe["out"]).exists() else "MXCSR not read"
        print(report(f"run {run} ray    ", ray1, s.result()) + f"\n  training thread: {mode}; {probe}", flush=True)
        print(f"run {run} ratio {statistics.median(ray1) / statistics.median(bare):.2f}x", flush=True)


def _dump(pid: int | None) -> None:
    if pid:
        spy = Path(sys.executable).parent / "py-spy"
        out = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True)
        # each thread's header and its three innermost frames
        lines, keep = (out.stdout or out.stderr).splitlines(), []
        for i, line in enumerate(lines):
            if line.startswith(("Thread", "Process")):
                keep += [line, *lines[i + 1 : i + 4]]
        print("\n".join(keep), flush=True)


if __name__ == "__main__":
    main()
