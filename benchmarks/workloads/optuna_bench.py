"""Optuna: a 200-trial study of a trivial objective (3 trial.report calls), untracked and tracked.

Fit time is ``study.optimize`` itself, including the study run's finish (which drains every record
to the store), so the difference to "none" is the whole tracking cost; the harness reports it per
trial (issue 20: ≤ 2 ms of tracking per trial).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "optuna"
LABEL_KEYS = ("trials",)
_BASE = ["optuna"]
CONFIGS: dict[str, list[str]] = {
    "none": _BASE,
    "trackhooks": _BASE + ["trackhooks_optuna"],
    "trackhooks autolog": _BASE + ["trackhooks_optuna"],
}

SIZES = {
    "full": {"trials": 200},
    "quick": {"trials": 200},
    "tiny": {"trials": 5},
}


def preload(configs: list[str]) -> None:
    _bench.import_modules(["optuna"])
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if any("trackhooks_optuna" in CONFIGS[c] for c in configs):
        _bench.preload_trackhooks("trackhooks_optuna", "TrackhooksCallback", "autolog")


def objective(trial: Any) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 4)
    for step in range(3):
        trial.report(x * x + step, step)
    return x * x + y


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import optuna

    callbacks: list[Any] = []
    if config == "trackhooks":
        from trackhooks_optuna import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench"))
    elif config == "trackhooks autolog":
        import trackhooks_optuna

        trackhooks_optuna.autolog(experiment="bench")
    elif config != "none":
        raise ValueError(config)
    import time

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    clock.setup_done()
    cpu0, thread0 = time.process_time(), time.thread_time()
    study.optimize(objective, n_trials=p["trials"], callbacks=callbacks or None)
    cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
    clock.fit_done()
    # CPU time beside wall time: on a shared machine the wall-clock difference is mostly other load
    return {"trials": len(study.trials), "fit_cpu_s": cpu, "fit_thread_cpu_s": thread}


if __name__ == "__main__":
    _bench.run_script(__name__)
