"""Console capture: 100 000 print calls inside a run, capture off vs on, to a file, unbuffered, a terminal.

Each configuration prints the same lines to sys.stdout, which for the measurement is pointed at a
destination like the one a training script has: a file (``python train.py > log``: block-buffered),
the same file with ``PYTHONUNBUFFERED=1`` (common in containers: every write is a system call) or
a terminal (a pseudo-terminal drained by ``cat``: line-buffered). The run is started before the
loop (setup) and finished after it (fit), so capture's cost at the finish (the last chunks and the
console.log artifact) is counted; the target is checked on fit (the loop and the finish), since
setup (start_run with a fresh store, the same in every configuration) would dilute the ratio.
System metrics are off in every configuration.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "console"
LABEL_KEYS = ("destination",)
EXTRA_ARGS = [(("--destination",), {"choices": ("file", "unbuffered", "terminal"), "default": "file",
                                    "help": "where sys.stdout goes during the loop"})]
CONFIGS: dict[str, list[str]] = {
    "capture off": [],
    "capture on": [],
    "capture fd": [],
}
SIZES = {"full": {"calls": 100_000}, "quick": {"calls": 100_000}, "tiny": {"calls": 200}}


def preload(configs: list[str]) -> None:
    _bench.preload_trackhooks("trackhooks", "start_run")


def _point_stdout_at(destination: str, tmp: str):
    """Make fd 1 and sys.stdout what a script writing to ``destination`` has; returns an undo."""
    sys.stdout.flush()
    saved_fd, saved_stream = os.dup(1), sys.stdout
    drain = None
    if destination == "terminal":
        master, slave = os.openpty()
        drain = subprocess.Popen(["cat"], stdin=master, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(master)
        os.dup2(slave, 1)
        os.close(slave)
    else:
        fd = os.open(os.path.join(tmp, "out.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.close(fd)
    if destination == "unbuffered":  # what PYTHONUNBUFFERED=1 gives sys.stdout
        stream = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    else:
        raw = io.FileIO(1, "w", closefd=False)
        stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", line_buffering=destination == "terminal")
    sys.stdout = stream

    def undo() -> None:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout = saved_stream
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
            if drain is not None:
                drain.wait(timeout=30)

    return undo


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import trackhooks

    capture = {"capture off": False, "capture on": True, "capture fd": "fd"}[config]
    undo = _point_stdout_at(p["destination"], tmp)
    try:
        run = trackhooks.start_run("bench", system_metrics=False, capture_output=capture)
        clock.setup_done()
        loss = 1.0
        t0 = time.perf_counter()
        for i in range(p["calls"]):
            loss *= 0.99999
            print(f"step {i} loss {loss:.5f}")
        t1 = time.perf_counter()
        run.finish()
        clock.fit_done()
        loop_s, finish_s = t1 - t0, time.perf_counter() - t1
    finally:
        undo()
    rec = trackhooks.open_store(os.environ["TRACKHOOKS_URI"]).run(run.id)
    kept = rec.console().count(b"\n")
    if capture and kept != p["calls"]:
        raise RuntimeError(f"console.log has {kept} lines, expected {p['calls']}")
    return {"calls": p["calls"], "lines_kept": kept, "loop_s": loop_s, "finish_s": finish_s}


if __name__ == "__main__":
    _bench.run_script(__name__)
