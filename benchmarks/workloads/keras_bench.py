"""Keras 3 (torch backend): a tiny Dense model, 20 epochs x 100 steps, with no tracking, trackhooks and peers.

Fit time includes ending the run (the trackhooks callback finishes its run in ``on_train_end``;
``mlflow.end_run()`` is called for MLflow's autolog if it left one open).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "keras"
LABEL_KEYS = ()
_BASE = ["keras", "torch", "numpy"]
CONFIGS: dict[str, list[str]] = {
    "none": _BASE,
    "trackhooks": _BASE + ["trackhooks_keras"],
    "trackhooks autolog": _BASE + ["trackhooks_keras"],
    "CSVLogger": _BASE,
    "mlflow.keras.autolog": _BASE + ["mlflow"],
}

SIZES = {
    "full": {"epochs": 20, "steps_per_epoch": 100, "batch_size": 32, "features": 16},
    "quick": {"epochs": 10, "steps_per_epoch": 50, "batch_size": 32, "features": 16},
    "tiny": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 8, "features": 4},
}


def preload(configs: list[str]) -> None:
    _bench.import_modules(["numpy", "torch", "keras"])
    mods = {m for c in configs for m in CONFIGS[c]}
    if "mlflow" in mods:
        _bench.import_modules(["mlflow", "mlflow.keras"])
    if "trackhooks_keras" in mods:
        _bench.preload_trackhooks("trackhooks_keras", "TrackhooksCallback", "autolog")


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import keras
    import numpy as np

    _bench.seed_all(0)
    keras.utils.set_random_seed(0)
    n = p["steps_per_epoch"] * p["batch_size"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p["features"]), dtype=np.float32)
    y = (x.sum(axis=1, keepdims=True) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    model = keras.Sequential([keras.Input((p["features"],)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])

    callbacks: list[Any] = []
    end = None
    if config == "trackhooks":
        from trackhooks_keras import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench"))
    elif config == "trackhooks autolog":
        import trackhooks_keras

        trackhooks_keras.autolog()  # its options are not part of the contract; the store comes from $TRACKHOOKS_URI
    elif config == "CSVLogger":
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(tmp, "log.csv")))
    elif config == "mlflow.keras.autolog":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        mlflow.set_experiment("bench")  # creates the database: setup, not fit
        mlflow.keras.autolog(log_models=False)
        end = mlflow.end_run
    elif config != "none":
        raise ValueError(config)

    clock.setup_done()
    model.fit(x, y, epochs=p["epochs"], batch_size=p["batch_size"], callbacks=callbacks, verbose=0, shuffle=False)
    if end is not None:
        end()
    clock.fit_done()
    return {"steps": p["epochs"] * p["steps_per_epoch"]}


if __name__ == "__main__":
    _bench.run_script(__name__)
