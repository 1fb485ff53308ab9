"""XGBoost: 500 rounds on 5000x20 with one eval set, with no tracking, trackhooks and MLflow's autolog.

``--one-fit``: 300 rounds on one thread (a ~0.1 s fit), run by the harness in a new interpreter per
measurement: the fixed cost of a tracker (its first run of a process, its writer's start-up, its
finish) against a fit as short as a quick experiment script's.

Fit time includes ending the run (``mlflow.end_run()`` for MLflow's autolog if it left one open).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "xgboost"
LABEL_KEYS = ("one_fit",)
EXTRA_ARGS = [(("--one-fit",), {"action": "store_true", "help": "300 rounds, nthread=1 (tiny: 5 rounds)"})]
_BASE = ["xgboost", "numpy"]
CONFIGS: dict[str, list[str]] = {
    "none": _BASE,
    "trackhooks": _BASE + ["trackhooks_xgboost"],
    "trackhooks autolog": _BASE + ["trackhooks_xgboost"],
    "mlflow.xgboost.autolog": _BASE + ["mlflow"],
}

SIZES = {
    "full": {"rounds": 500, "rows": 5000, "features": 20},
    "quick": {"rounds": 200, "rows": 5000, "features": 20},
    "tiny": {"rounds": 5, "rows": 200, "features": 5},
}


def preload(configs: list[str]) -> None:
    _bench.import_modules(["numpy", "xgboost"])
    mods = {m for c in configs for m in CONFIGS[c]}
    if "mlflow" in mods:
        _bench.import_modules(["mlflow", "mlflow.xgboost"])
    if "trackhooks_xgboost" in mods:
        _bench.preload_trackhooks("trackhooks_xgboost", "TrackhooksCallback", "autolog")


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.standard_normal((p["rows"], p["features"]), dtype=np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.1 * rng.standard_normal(p["rows"]) > 0.5).astype(np.float32)
    cut = int(0.8 * p["rows"])
    dtrain = xgb.DMatrix(x[:cut], label=y[:cut])
    dvalid = xgb.DMatrix(x[cut:], label=y[cut:])
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "error"], "max_depth": 4, "eta": 0.1,
              "tree_method": "hist", "nthread": 1 if p.get("one_fit") else 2}
    rounds = (300 if p["rounds"] >= 100 else p["rounds"]) if p.get("one_fit") else p["rounds"]

    callbacks: list[Any] = []
    end = None
    if config == "trackhooks":
        from trackhooks_xgboost import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench"))
    elif config == "trackhooks autolog":
        import trackhooks_xgboost

        trackhooks_xgboost.autolog()  # its options are not part of the contract; the store comes from $TRACKHOOKS_URI
    elif config == "mlflow.xgboost.autolog":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        mlflow.set_experiment("bench")  # creates the database: setup, not fit
        mlflow.xgboost.autolog(log_models=False)
        end = mlflow.end_run
    elif config != "none":
        raise ValueError(config)

    clock.setup_done()
    booster = xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")],
                        callbacks=callbacks or None, verbose_eval=False)
    if end is not None:
        end()
    clock.fit_done()
    return {"rounds": int(booster.num_boosted_rounds())}


if __name__ == "__main__":
    _bench.run_script(__name__)
