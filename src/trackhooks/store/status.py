"""Whether a run is still alive: ``running`` runs whose writer is gone read as ``killed``.

On the host that wrote the run, its process id (plus the process start time, to tell a reused pid
apart) answers at once; elsewhere, a heartbeat older than ``HEARTBEAT_STALE_S`` does. Engine-neutral:
every store engine stores ``pid``, ``host``, ``pid_start`` and ``heartbeat`` with the run.
"""

from __future__ import annotations

import os
import time

HEARTBEAT_STALE_S = 120.0  # a run on another host with no heartbeat for this long reads as killed


def _hostname() -> str:
    # os.uname() gives what socket.gethostname() does without importing socket (a few ms of the
    # first start_run of a process)
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


HOST = _hostname()


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[19])
    except (ValueError, IndexError):
        return None


def pid_alive(pid: int, pid_start: int | None) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        state = data[data.rindex(b")") + 2:].split()[0]
        if state in (b"Z", b"X"):
            return False
    except (OSError, ValueError, IndexError):
        return True
    if pid_start is not None:
        now_start = process_start_time(pid)
        if now_start is not None and now_start != pid_start:
            return False
    return True


def effective_status(status: str, host: str | None, pid: int | None, pid_start: int | None,
                     heartbeat: float | None) -> str:
    """A running run whose writer is gone reads as killed (at once on this host, by heartbeat elsewhere)."""
    if status != "running":
        return status
    if host == HOST and pid is not None:
        return "running" if pid_alive(pid, pid_start) else "killed"
    if heartbeat is not None and time.time() - heartbeat > HEARTBEAT_STALE_S:
        return "killed"
    return status
