"""What a background thread costs a training loop that holds the GIL between short C calls.

The loop is the `sklearn` workload's search (GridSearchCV of scaler + LogisticRegression, 20
candidates x 3 folds on breast_cancer, then one small fit): Python between short NumPy/Cython calls,
like most training loops. Each mode runs it in a fresh interpreter, interleaved, and reports the
median wall time of the fit, the training thread's CPU time, and the voluntary context switches of
the other threads (each one a wait for the GIL, or a sleep):

- ``none``: the loop alone;
- ``thread-contiguous``: a thread that burns 30 ms of CPU in one stretch beside it;
- ``thread-bursts``: a thread that burns the same 30 ms in ~1 500 bursts (sleep 0.5 ms, 20 us of
  work): a GIL hand-over per burst;
- ``run-open``: ``trackhooks.start_run()`` before the loop, ``finish()`` after it, nothing logged;
- ``run-open-woken``: the same with ``trackhooks.plugin.wake_writer()`` right after ``start_run``
  (the writer's start-up beside the loop, as the core did before the fourth pass);
- ``autolog``: ``trackhooks_sklearn.autolog()``.

    .venv/bin/python benchmarks/gil_handoffs.py [--repeats 8] [--modes none,run-open,...]
    strace -f -o /tmp/st.txt .venv/bin/python benchmarks/gil_handoffs.py --child run-open   # one fit, here

See benchmarks/README.md, "Fourth pass".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODES = ["none", "thread-contiguous", "thread-bursts", "run-open", "run-open-woken", "autolog"]

CHILD = r"""
import json, os, sys, threading, time
import numpy as np
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

mode = sys.argv[1]
x, y = datasets.load_breast_cancer(return_X_y=True)
xi, yi = datasets.load_iris(return_X_y=True)
grid = {"logisticregression__C": list(np.logspace(-3, 2, 10)), "logisticregression__fit_intercept": [True, False]}
search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), grid, cv=3, n_jobs=1)
small = LogisticRegression(max_iter=500)
run = None


ended = []  # the switches of threads that are gone by the end


def own_switches():
    with open("/proc/thread-self/status") as f:
        return int(next(line for line in f if line.startswith("voluntary_ctxt_switches")).split(":")[1])


def burn(bursts):
    start = time.thread_time()
    while time.thread_time() - start < 0.03:
        if bursts:
            time.sleep(0.0005)
            sum(range(2000))
        else:
            sum(range(1000))
    ended.append(own_switches())


if mode == "autolog":
    import trackhooks_sklearn

    trackhooks_sklearn.autolog()


def switches():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            out[tid] = int(fields["voluntary_ctxt_switches"])
        except (OSError, KeyError, ValueError):
            pass
    return out


main = str(threading.get_native_id())
t0, c0 = time.perf_counter(), time.thread_time()
if mode.startswith("thread-"):
    threading.Thread(target=burn, args=(mode == "thread-bursts",), daemon=True).start()
if mode.startswith("run-open"):
    import trackhooks

    run = trackhooks.start_run()
    if mode == "run-open-woken":
        from trackhooks.plugin import wake_writer

        wake_writer()
search.fit(x, y)
small.fit(xi, yi)
if run is not None:
    run.finish()
t1, c1 = time.perf_counter(), time.thread_time()
others = sum(v for k, v in switches().items() if k != main) + sum(ended)
print(json.dumps({"mode": mode, "wall_s": t1 - t0, "cpu_s": c1 - c0, "other_switches": others}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--child", choices=MODES, help="run one measurement in this process (under strace, say)")
    args = ap.parse_args()
    if args.child:
        sys.argv = [sys.argv[0], args.child]
        exec(compile(CHILD, "gil_handoffs-child", "exec"), {"__name__": "__main__"})
        return
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TRACKHOOKS_GIT_DIFF": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    rows: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        env["TRACKHOOKS_URI"] = os.path.join(tmp, "store")
        for _ in range(args.repeats):
            for mode in modes:
                out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env,
                                     cwd=tmp, timeout=300)
                if out.returncode != 0:
                    sys.exit(f"{mode} failed:\n{out.stderr}")
                rows[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["wall_s"] for r in rows["none"]) if "none" in rows else None
    print(f"| mode | fit wall (median of {args.repeats}) | vs none | training thread CPU | "
          "voluntary switches of other threads |")
    print("|---|---|---|---|---|")
    for mode, rs in rows.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        delta = f"+{(wall - base) * 1000:.0f} ms" if base is not None else ""
        print(f"| {mode} | {wall * 1000:.0f} ms | {delta} | {statistics.median(r['cpu_s'] for r in rs) * 1000:.0f} ms | "
              f"{statistics.median(r['other_switches'] for r in rs):.0f} |")


if __name__ == "__main__":
    main()
