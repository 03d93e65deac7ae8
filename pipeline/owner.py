"""Who a run or a process belongs to: host, pid and the process's start time.

A pid alone is reused by the system; with the start time (clock ticks since boot, from
/proc/PID/stat) it names one process for good. Run owners (`lstmpipe.owner`), run-name locks and
the local cluster's processes are all checked this way before anything is marked dead or killed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if there is no such process."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except OSError:
        if stat.parent.parent.is_dir() and Path("/proc/self/stat").exists():
            return None  # Linux: no /proc entry, no process
        try:
            os.kill(pid, 0)  # elsewhere: existence only
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    return text.rsplit(")", 1)[1].split()[19]  # field 22, counted after the parenthesised command


def owner() -> str:
    """This process as a run owner: host:pid:start-ticks (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{start_ticks(os.getpid())}"


def owner_alive(value: str, *, host: str | None = None) -> bool | None:
    """True/False for an owner on this host; None (unknown) for another host's or a malformed value."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != (host or socket.gethostname()) or not parts[1].isdigit():
        return None
    ticks = start_ticks(int(parts[1]))
    return ticks is not None and (ticks == parts[2] or "?" in (ticks, parts[2]))
