"""B9: where one `lstmpipe train` on the smoke config spends its time and CPU.

The command runs in a fresh process, as a user runs it (its own Ray instance). Meanwhile every
process that appears on the machine is sampled from /proc every 0.2 s: its role (Ray names its
actor processes `ray::ClassName`), when it first appeared and the CPU seconds it used. The driver's
own phases come from the run summary (`phase_s`: start, data, fit, finish). Together they say what
a run's fixed cost is made of: Python imports, Ray's system processes, Ray Data's and Ray Train's
actors, each a Python process that imports Ray (and often torch) on the same two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    role: str
    first_s: float  # seconds after the command started
    cpu_s: float  # user + system


@dataclass
class StartupProfile:
    wall_s: float  # to the process's exit (Ray's shutdown included)
    summary_s: float  # to the summary's first line on stdout: what the user waits for
    phase_s: dict[str, float]
    epochs: int
    procs: list[Proc] = field(default_factory=list)

    def by_role(self) -> dict[str, tuple[int, float, float]]:
        """role -> (processes, CPU seconds, first appearance)."""
        out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, float("inf")])
        for p in self.procs:
            row = out[p.role]
            row[0], row[1], row[2] = row[0] + 1, row[1] + p.cpu_s, min(row[2], p.first_s)
        return {k: (int(n), cpu, first) for k, (n, cpu, first) in out.items()}


def role(cmdline: str) -> str:
    """A process's role from its command line: `ray::TrainController`, `raylet`, `dashboard`, ..."""
    if cmdline.startswith("ray::"):
        return re.sub(r"\.__init__$", "", cmdline.split()[0])
    if cmdline.startswith("ray-dashboard-"):
        return "dashboard head modules"
    first = cmdline.split()[0] if cmdline else "?"
    if first.endswith(("python", "python3")) or re.search(r"python3?(\.\d+)?$", first):
        script = next((a for a in cmdline.split()[1:] if not a.startswith("-")), "")
        if "lstmpipe" in script:
            return "driver (lstmpipe)"
        if "forkserver" in cmdline:
            return "dashboard head modules"
        return Path(script).stem or "python"
    return Path(first).name


def cpu_seconds(stat: str) -> float:
    """utime + stime from a /proc/<pid>/stat line (the command name may hold spaces and parentheses)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _snapshot() -> dict[int, tuple[str, float]]:
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(pid)] = (cmd, cpu_seconds(stat))
    return out


def profile_train(workdir: str) -> StartupProfile:
    work = Path(workdir) / "startup"
    work.mkdir(parents=True, exist_ok=True)
    summary = work / "summary.json"
    cmd = [
        str(Path(sys.executable).parent / "lstmpipe"),
        "train",
        "-c",
        str(REPO / "conf" / "smoke.yaml"),
        "--set",
        f"train.storage_path={work / 'runs'}",
        "--set",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        "--summary-json",
        str(summary),
    ]
    before = set(_snapshot())
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    summary_at: list[float] = []

    def watch_stdout() -> None:
        for line in proc.stdout:
            if line.startswith("== train:") and not summary_at:
                summary_at.append(time.perf_counter() - start)

    reader = threading.Thread(target=watch_stdout, daemon=True)
    reader.start()
    seen: dict[int, Proc] = {}
    while proc.poll() is None:
        now = time.perf_counter() - start
        for pid, (cmdline, cpu) in _snapshot().items():
            if pid in before:
                continue
            p = seen.setdefault(pid, Proc(role=role(cmdline), first_s=now, cpu_s=cpu))
            if cmdline.startswith("ray::") and not cmdline.startswith("ray::IDLE"):
                p.role = role(cmdline)  # an idle worker that became an actor
            p.cpu_s = max(p.cpu_s, cpu)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    reader.join(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}")
    result = json.loads(summary.read_text())
    from pipeline.config import load

    epochs = load(str(REPO / "conf" / "smoke.yaml")).train.epochs
    return StartupProfile(
        wall_s=wall,
        summary_s=summary_at[0] if summary_at else wall,
        phase_s=result["phase_s"],
        epochs=epochs,
        procs=[p for p in seen.values() if p.cpu_s >= 0.05],
    )


def table(profile: StartupProfile) -> str:
    rows = sorted(profile.by_role().items(), key=lambda kv: kv[1][2])
    lines = ["| process (role) | count | CPU s | first seen (s) |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {n} | {cpu:.1f} | {first:.1f} |" for name, (n, cpu, first) in rows]
    return "\n".join(lines)
