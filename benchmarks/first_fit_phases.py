"""Where a short fit's fixed costs go, in fresh processes: the figures of benchmarks/README.md "Fifth pass" and "Sixth pass".

    .venv/bin/python benchmarks/first_fit_phases.py start-run --repeats 8 --code /tmp/old [--bare]
    .venv/bin/python benchmarks/first_fit_phases.py sklearn-plots --repeats 8 [--forest] [--untracked]
    .venv/bin/python benchmarks/first_fit_phases.py xgb-importance

``start-run``: the first ``start_run`` of a fresh process on an existing store (made once, before),
this checkout and, with ``--code DIR``, another checkout's trackhooks (a ``git worktree`` of an
earlier commit), interleaved; the process has imported ``trackhooks.run`` and built the plugin
manager first (a training script's situation), or with ``--bare`` only ``import trackhooks`` (the
``start_run`` row of ``core_micro.py``: the first run pays for every module it loads). ``sklearn-plots``: scikit-learn autolog with plots on digits
(LogisticRegression, or a 50-tree forest), the wall time of each phase of the tracked fit and the
collector's counts when the fit starts, the collections of each generation inside it, and the
full ones' durations (``--untracked``: the same fit without ``autolog()``, for its collections). ``xgb-importance``: the five ``get_score`` calls
against ``importance_scores`` (three walks of the trees) on a 300-round booster, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from instructions import code_env  # noqa: E402

# argv[1] "bare": what core_micro.py's start_run row measures, a process that imported trackhooks
# and nothing else, so the first start_run pays for every module it loads (the standard library's too)
_START_RUN = r"""
import json, sys, time
import trackhooks
if sys.argv[1] != "bare":
    import trackhooks.run
    trackhooks.plugin_manager()
t = time.perf_counter()
run = trackhooks.start_run(experiment="phases")
ms = (time.perf_counter() - t) * 1e3
run.finish()
print(json.dumps({"start_run_ms": ms}))
"""

_SKLEARN = r"""
import gc, importlib, json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
import sklearn.metrics
import trackhooks, trackhooks.run, trackhooks_sklearn
import trackhooks_sklearn.plots
trackhooks.plugin_manager()
x, y = load_digits(return_X_y=True)
phases = {}
def timed(modname, attr):
    owner = importlib.import_module(modname)
    cls, _, name = attr.rpartition(".")
    if cls:
        owner = getattr(owner, cls)
    f = getattr(owner, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            phases[attr] = phases.get(attr, 0.0) + (time.perf_counter() - t) * 1e3
    setattr(owner, name, wrapper)
R = "trackhooks_sklearn.recording"
for attr in ("open_run", "log_params", "log_data", "evaluate"):
    timed(R, attr)
timed("trackhooks_sklearn.plots", "log_fit_plots")
timed("trackhooks.run", "Run.finish")
full = []
by_gen = [0, 0, 0]
def on_gc(phase, info, _t=[0.0]):
    if phase == "start":
        by_gen[info["generation"]] += 1
    if info["generation"] == 2:
        if phase == "start":
            _t[0] = time.perf_counter()
        else:
            full.append((time.perf_counter() - _t[0]) * 1e3)
if sys.argv[2] == "tracked":
    trackhooks_sklearn.autolog()
model = (RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1) if sys.argv[1] == "forest"
         else LogisticRegression(max_iter=2000))
gc.callbacks.append(on_gc)
counts = gc.get_count()
t = time.perf_counter()
model.fit(x, y)
fit_ms = (time.perf_counter() - t) * 1e3
gc.callbacks.remove(on_gc)
print(json.dumps({"fit_ms": fit_ms, "full_gc_ms": full, "by_gen": by_gen, "counts": counts, **phases}))
"""


def _child(code: str, args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_run(repeats: int, other: str | None, bare: bool = False) -> None:
    store = tempfile.mkdtemp(prefix="phases-")
    variants = {"this checkout": code_env(None)}
    if other:
        variants[f"--code {other}"] = code_env(other)
    ms: dict[str, list[float]] = {v: [] for v in variants}
    for env in variants.values():
        env["TRACKHOOKS_URI"] = store
        env["TRACKHOOKS_SYSTEM_METRICS"] = "0"
    _child(_START_RUN, ["warm"], variants["this checkout"])  # the store exists before the first measurement
    for _ in range(repeats):
        for name, env in variants.items():
            ms[name].append(_child(_START_RUN, ["bare" if bare else "warm"], {**env})["start_run_ms"])
    print("| trackhooks | n | first start_run ms (median) | min | max |")
    print("|---|---|---|---|---|")
    for name, xs in ms.items():
        print(f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} |")


def sklearn_plots(repeats: int, forest: bool, untracked: bool) -> None:
    cols = ["fit_ms", "open_run", "log_params", "log_data", "evaluate", "log_fit_plots", "Run.finish"]
    print("| process | " + " | ".join(cols) + " | collector counts at the fit's start | collections in the fit "
          "(gen 0/1/2) | full GCs in the fit (ms) |")
    print("|---|" + "---|" * (len(cols) + 3))
    for i in range(repeats):
        store = os.path.join(tempfile.mkdtemp(prefix="phases-"), "store")
        env = {**code_env(None), "TRACKHOOKS_URI": store, "TRACKHOOKS_SYSTEM_METRICS": "0"}
        # an existing store, as a user's script has (run.py's templates): creating it is not the fit's cost
        subprocess.run([sys.executable, "-c", "import sys; from trackhooks.store.sqlite import init_store; "
                        "init_store(sys.argv[1])", store], env=env, check=True)
        row = _child(_SKLEARN, ["forest" if forest else "logistic", "untracked" if untracked else "tracked"], env)
        gcs = ", ".join(f"{v:.0f}" for v in row["full_gc_ms"]) or "none"
        print(f"| {i + 1} | " + " | ".join(f"{row.get(c, 0.0):.2f}" for c in cols)
              + f" | {tuple(row['counts'])} | {'/'.join(map(str, row['by_gen']))} | {gcs} |")


def xgb_importance() -> None:
    import time

    import numpy as np
    import xgboost as xgb
    from trackhooks_xgboost.media import IMPORTANCE_TYPES, importance_scores

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 20))
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(x, x[:, 0] + rng.normal(size=5000)), 300)

    def five() -> None:
        for kind in IMPORTANCE_TYPES:
            booster.get_score(importance_type=kind)

    ms: dict[str, list[float]] = {"five get_score calls": [], "importance_scores": []}
    for _ in range(20):
        for name, f in (("five get_score calls", five), ("importance_scores", lambda: importance_scores(booster))):
            t = time.perf_counter()
            f()
            ms[name].append((time.perf_counter() - t) * 1e3)
    print("| 300 rounds | median ms |")
    print("|---|---|")
    for name, xs in ms.items():
        print(f"| {name} | {statistics.median(xs):.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("start-run", "sklearn-plots", "xgb-importance"))
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--code", help="start-run: another checkout's trackhooks, interleaved with this one")
    ap.add_argument("--bare", action="store_true", help="start-run: a process that imported only trackhooks")
    ap.add_argument("--forest", action="store_true", help="sklearn-plots: RandomForestClassifier(50 trees)")
    ap.add_argument("--untracked", action="store_true", help="sklearn-plots: the same fit without autolog()")
    a = ap.parse_args()
    if a.what == "start-run":
        start_run(a.repeats, a.code, a.bare)
    elif a.what == "sklearn-plots":
        sklearn_plots(a.repeats, a.forest, a.untracked)
    else:
        xgb_importance()
    return 0


if __name__ == "__main__":
    sys.exit(main())
