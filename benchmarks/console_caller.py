"""Caller-side cost of console capture (issue 17), without the writer thread.

The same 100 000 print calls go to an original text stream and to trackhooks' stand-in for it
(``capture_output=True``) over the same binary layer, alternated in one process, best of 7: the
difference is what a print costs the training thread. Destinations: a file (block-buffered), a
file with write-through (``PYTHONUNBUFFERED=1``) and a line-buffered stream (a terminal's
buffering). The end-to-end numbers, writer included, fresh process per measurement, are the
``console-*`` workloads of ``benchmarks/run.py``.

    python benchmarks/console_caller.py
"""
import io, os, sys, tempfile, time
from trackhooks import console as c  # noqa: E402
class Cap:
    on = True
    def __init__(self): self.buffer = []
    def backpressure(self): pass
fd = os.open(os.path.join(tempfile.mkdtemp(), "out.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
for dest in ("file", "unbuffered", "line"):
    if dest == "unbuffered":
        orig = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", write_through=True)
    else:
        orig = io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)), encoding="utf-8",
                                line_buffering=dest == "line")
    cap = Cap()
    tee = c._text_tee(orig, cap)
    best = {"orig": 1e9, "tee": 1e9}
    for rep in range(7):
        for name, s in (("orig", orig), ("tee", tee)):
            cap.buffer.clear()
            t0 = time.perf_counter()
            for i in range(100000):
                print(f"step {i} loss {0.5:.5f}", file=s)
            s.flush()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"{dest:10s} original {best['orig']:.3f} s   with capture {best['tee']:.3f} s   "
          f"ratio {best['tee'] / best['orig']:.3f}")
