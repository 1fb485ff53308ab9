"""Rich records: caller-thread cost of log_image / log_histogram next to a bare ``arr.copy()`` of the
same array (measured side by side, interleaved, in one fresh process: the value is the ratio of the
medians), and scikit-learn fits on digits (LogisticRegression; RandomForestClassifier, whose
training metrics predict with every tree twice) with autolog's plots next to the same fit untracked,
also with the fit's folder a dirty git work tree (the run's git probe runs).

The writer thread is kept idle while the caller is timed (its interval is set to an hour, as in
core_micro's "writer idle" row, and the number of calls stays below the media memory bound), so the
rows measure what the training thread pays: validation and the copy. Each call is timed alone with
perf_counter_ns; the encoding and binning happen at the flush after the timed loop.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "media"
LABEL_KEYS = ()
CONFIGS: dict[str, list[str]] = {
    "log_image 512x512x3 uint8 vs arr.copy()": ["trackhooks", "numpy", "PIL"],
    "log_histogram 1M float64 vs arr.copy()": ["trackhooks", "numpy"],
    "none": ["sklearn", "numpy"],
    "trackhooks autolog (with plots)": ["sklearn", "numpy", "trackhooks_sklearn"],
    "trackhooks autolog (with plots; dirty git work tree)": ["sklearn", "numpy", "trackhooks_sklearn"],
    "none (random forest)": ["sklearn", "numpy"],
    "trackhooks autolog (with plots; random forest)": ["sklearn", "numpy", "trackhooks_sklearn"],
}
MICRO = ("log_image 512x512x3 uint8 vs arr.copy()", "log_histogram 1M float64 vs arr.copy()")

SIZES = {
    # histograms x 8 MB stay under the writer's media memory bound (MAX_MEDIA_BYTES)
    "full": {"images": 200, "histograms": 40, "estimators": 100, "max_iter": 2000},
    "quick": {"images": 100, "histograms": 30, "estimators": 50, "max_iter": 2000},
    "tiny": {"images": 10, "histograms": 10, "estimators": 5, "max_iter": 50},
}


def preload(configs: list[str]) -> None:
    _bench.import_modules(["numpy"])
    if any(c in MICRO for c in configs):
        _bench.import_modules(["PIL.Image"])
    if any(c not in MICRO for c in configs):
        _bench.import_modules(["sklearn.datasets", "sklearn.ensemble", "sklearn.metrics"])
    if any(c.startswith("trackhooks autolog") for c in configs):
        _bench.preload_trackhooks("trackhooks_sklearn", "autolog")
        import trackhooks_sklearn.plots  # noqa: F401

        import trackhooks

        # entry-point discovery happens once per process (0.5 s here), like the imports above: it is
        # not what a fit with plots costs
        trackhooks.plugin_manager()


def _side_by_side(arr: Any, log: Any, n: int, clock: _bench.Clock) -> dict[str, Any]:
    from trackhooks import writer

    w = writer.get_writer()
    w.flush()
    w.interval = 3600.0
    ns = time.perf_counter_ns
    copies, calls = [], []
    kept = []  # the floor's copies stay alive like the logged ones do in the buffer (same allocator path)
    arr.copy()
    log(0)  # first call: lazy imports of the media module
    clock.setup_done()
    def floor() -> None:
        t = ns()
        kept.append(arr.copy())
        copies.append(ns() - t)
        if len(kept) > 8:
            kept.pop(0)

    def tracked(i: int) -> None:
        t = ns()
        log(i)
        calls.append(ns() - t)

    for i in range(1, n + 1):  # alternating which goes first: neither pays for the other's page faults
        if i % 2:
            floor()
            tracked(i)
        else:
            tracked(i)
            floor()
    clock.fit_done()
    w.interval = writer.DEFAULT_INTERVAL
    w.flush()
    c, m = statistics.median(copies), statistics.median(calls)
    return {"value": m / c, "unit": "× arr.copy()", "copy_us": c / 1000, "call_us": m / 1000, "calls": n}


def _image(p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import numpy as np

    import trackhooks

    arr = np.random.default_rng(0).integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    run = trackhooks.start_run(experiment="bench")
    out = _side_by_side(arr, lambda i: run.log_image("img", arr, step=i), p["images"], clock)
    run.finish()
    return out


def _histogram(p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import numpy as np

    import trackhooks

    arr = np.random.default_rng(0).normal(size=1_000_000)
    run = trackhooks.start_run(experiment="bench")
    out = _side_by_side(arr, lambda i: run.log_histogram("h", arr, step=i), p["histograms"], clock)
    run.finish()
    return out


def _sklearn(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    warnings.filterwarnings("ignore")  # lbfgs convergence warnings on unscaled digits
    x, y = load_digits(return_X_y=True)  # 1797 samples, 10 classes: confusion matrix, 20 curves, a table
    if config.startswith("trackhooks"):
        import trackhooks_sklearn

        trackhooks_sklearn.autolog()
    if "random forest" in config:
        model = RandomForestClassifier(n_estimators=p["estimators"], random_state=0, n_jobs=1)
    else:
        model = LogisticRegression(max_iter=p["max_iter"])
    clock.setup_done()
    model.fit(x, y)
    clock.fit_done()
    return {}


def prepare(config: str, tmp: str) -> None:
    """Before the clock starts (_bench.measure): the folder of a "git work tree" configuration."""
    if "git work tree" in config:
        _dirty_work_tree(tmp)


def _dirty_work_tree(tmp: str) -> None:
    """The measurement's folder (its working directory) as a user's script folder usually is: a git
    work tree with an uncommitted change, and the diff recorded (the default; run.py's children turn
    it off for the other rows), so that the run's git probe runs: `git status`, then `git diff HEAD`."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=tmp, check=True,
                       capture_output=True)

    git("init", "-q", ".")
    with open(os.path.join(tmp, "train.py"), "w") as f:
        f.write("C = 1.0\n")
    git("add", "train.py")
    git("commit", "-qm", "init")
    with open(os.path.join(tmp, "train.py"), "a") as f:
        f.write("C = 0.5  # tuned\n")
    os.environ["TRACKHOOKS_GIT_DIFF"] = "1"


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    if config.startswith("log_image"):
        return _image(p, tmp, clock)
    if config.startswith("log_histogram"):
        return _histogram(p, tmp, clock)
    return _sklearn(config, p, tmp, clock)


if __name__ == "__main__":
    _bench.run_script(__name__)
