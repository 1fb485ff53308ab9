"""Lazy ``trackhooks.autolog()`` (issue 21): what one ``autolog()`` line costs a script, in process
wall time of fresh interpreters.

Each config measures a pair of scripts side by side, alternating A B A B ... in new processes
(``sys.executable -c ...``, nothing forked, imports included: that is the cost in question), and
its ``value`` is the ratio of the medians B / A, with both medians in the details:

- ``autolog(): import + autolog() vs import``: ``import trackhooks; trackhooks.autolog()`` against
  ``import trackhooks`` (target ≤ 1.3×: no framework, no pluggy imported).
- ``autolog(): sklearn fit script vs untracked``: a script doing one ~1 s scikit-learn fit with
  ``import trackhooks; trackhooks.autolog()`` at its top against the same script without it
  (target ≤ 1.2×; the tracked one also records its run: params, data digest, training metrics).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "autolog"
LABEL_KEYS = ("procs",)

IMPORT = "autolog(): import + autolog() vs import"
SKLEARN = "autolog(): sklearn fit script vs untracked"
CONFIGS: dict[str, list[str]] = {IMPORT: ["trackhooks"], SKLEARN: ["trackhooks", "sklearn", "trackhooks_sklearn"]}

SIZES = {
    # procs: processes per script; samples/trees size the fit (~1 s on this machine at full and quick)
    "full": {"procs": 15, "samples": 6000, "trees": 40},
    "quick": {"procs": 7, "samples": 6000, "trees": 40},
    "tiny": {"procs": 1, "samples": 300, "trees": 2},
}

AUTOLOG = "import trackhooks\ntrackhooks.autolog()\n"
FIT = """
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
X, y = make_classification(n_samples={samples}, n_features=20, n_informative=8, random_state=0)
model = RandomForestClassifier(n_estimators={trees}, n_jobs=1, random_state=0).fit(X, y)
print(round(model.score(X, y), 4))
"""


def preload(configs: list[str]) -> None:
    pass  # everything measured here is a fresh interpreter's own imports


def _wall(code: str, timeout: float = 600.0) -> float:
    """Wall time of ``python -c code``, to its exit. The wait blocks in ``waitpid``: with a timeout,
    ``Popen.wait`` polls with sleeps that double from 0.5 ms, and a ~20 ms interpreter's wall time read
    as 15.7, 32 or 64 ms (benchmarks/README.md, "Twelfth pass"). A timer kills it at ``timeout``."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    killed: list[bool] = []
    timer = threading.Timer(timeout, lambda: (killed.append(True), proc.kill()))
    timer.start()
    try:
        rc = proc.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - t
    if killed:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    if rc != 0:
        raise subprocess.CalledProcessError(rc, proc.args)
    return wall


def _pair(a: str, b: str, procs: int) -> dict[str, Any]:
    _wall(a), _wall(b)  # warm the page cache and the bytecode caches of both, unmeasured
    ta, tb = [], []
    for _ in range(procs):
        ta.append(_wall(a))
        tb.append(_wall(b))
    ma, mb = statistics.median(ta), statistics.median(tb)
    return {"value": mb / ma, "unit": "×", "baseline_ms": ma * 1000, "tracked_ms": mb * 1000,
            "min": min(tb) / max(ta), "max": max(tb) / min(ta), "procs": procs}


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    clock.setup_done()
    if config == IMPORT:
        row = _pair("import trackhooks\n", AUTOLOG, p["procs"])
    else:
        fit = FIT.format(**p)
        row = _pair(fit, AUTOLOG + fit, p["procs"])
    clock.fit_done()
    return row


if __name__ == "__main__":
    _bench.run_script(__name__)
