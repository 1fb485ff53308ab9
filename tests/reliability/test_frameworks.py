"""SIGTERM, Ctrl-C and user exceptions during real Lightning, Keras and XGBoost fits.

Signals go to a child process that trains for "ever" and prints ``EPOCH n`` after the integration has
logged epoch n. Its flush interval is 30 s, so whatever reaches the store was drained by the signal
path, not by the periodic flush. Exceptions are raised in-process from inside the user's code.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import trackhooks

from ._util import child_env, spawn

pytestmark = pytest.mark.timeout(150)

LIGHTNING = """
import time, torch, lightning as L
from torch.utils.data import DataLoader, TensorDataset
from trackhooks_lightning import TrackhooksCallback

class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

class Report(L.Callback):
    def on_train_epoch_end(self, trainer, module):
        print("EPOCH", trainer.current_epoch, flush=True)
        time.sleep(0.1)

torch.manual_seed(0)
data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=16)
trainer = L.Trainer(max_epochs=100_000, callbacks=[TrackhooksCallback(experiment="signals"), Report()], logger=False,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    num_sanity_val_steps=0)
trainer.fit(Model(), data)
"""

KERAS = """
import os, time
os.environ.setdefault("KERAS_BACKEND", "torch")
import keras, numpy as np
from trackhooks_keras import TrackhooksCallback

class Report(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print("EPOCH", epoch, flush=True)
        time.sleep(0.1)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
rng = np.random.default_rng(0)
model.fit(rng.normal(size=(64, 4)), rng.normal(size=(64, 1)), epochs=100_000, verbose=0,
          callbacks=[TrackhooksCallback(experiment="signals"), Report()])
"""

XGBOOST = """
import time, numpy as np, xgboost as xgb
from trackhooks_xgboost import TrackhooksCallback

class Report(xgb.callback.TrainingCallback):
    def after_iteration(self, model, epoch, evals_log):
        print("EPOCH", epoch, flush=True)
        time.sleep(0.05)
        return False

rng = np.random.default_rng(0)
dtrain = xgb.DMatrix(rng.normal(size=(200, 4)), label=rng.normal(size=200))
xgb.train({"max_depth": 2, "nthread": 1}, dtrain, num_boost_round=1_000_000, evals=[(dtrain, "train")],
          verbose_eval=False, callbacks=[TrackhooksCallback(experiment="signals"), Report()])
"""

SCRIPTS = {"lightning": (LIGHTNING, "trackhooks_lightning"), "keras": (KERAS, "trackhooks_keras"),
           "xgboost": (XGBOOST, "trackhooks_xgboost")}


def _epochs_recorded(rec) -> set[int]:
    seen: set[int] = set()
    for key in rec.metric_keys():
        s = rec.metric(key)
        seen.update(e for e in s.epochs if e is not None)
        if not any(e is not None for e in s.epochs):  # per-iteration frameworks (xgboost): step = round
            seen.update(s.steps)
    return seen


# Keras + Ctrl-C is tested in-process below (autolog); a child per case costs ~10 s of imports
@pytest.mark.parametrize("framework, sig", [("lightning", signal.SIGTERM), ("lightning", signal.SIGINT),
                                            ("keras", signal.SIGTERM), ("xgboost", signal.SIGTERM),
                                            ("xgboost", signal.SIGINT)],
                         ids=["lightning-SIGTERM", "lightning-SIGINT", "keras-SIGTERM", "xgboost-SIGTERM",
                              "xgboost-SIGINT"])
def test_signal_during_fit_drains_and_says_killed(store_path, framework, sig):
    script, package = SCRIPTS[framework]
    pytest.importorskip(package)
    proc = spawn(script, store_path, env=child_env(store_path, TRACKHOOKS_FLUSH_INTERVAL="30",
                                                   KERAS_BACKEND="torch"))
    last = -1
    deadline = time.monotonic() + 120
    while last < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("EPOCH"):
            last = int(line.split()[1])
    assert last >= 2, proc.stderr.read()
    proc.send_signal(sig)
    try:
        code = proc.wait(60)
    except Exception:
        proc.kill()
        raise
    err = proc.stderr.read()
    assert code != 0, err  # the process does not carry on training
    (rec,) = trackhooks.open_store(store_path).runs(experiment="signals")
    assert rec.stored_status == "killed", (rec.stored_status, err[-2000:])
    assert set(range(last + 1)) <= _epochs_recorded(rec), err[-2000:]


# ---- exceptions in-process ------------------------------------------------------------------------


class UserBug(Exception):
    pass


def test_lightning_user_exception_passes_through_and_fails_the_run(store_path):
    L = pytest.importorskip("lightning")
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset
    from trackhooks_lightning import TrackhooksCallback

    bug = UserBug("lightning user bug")

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, i):
            if self.current_epoch == 1:
                raise bug
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=16)
    trainer = L.Trainer(max_epochs=5, callbacks=[TrackhooksCallback(experiment="exc")], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(UserBug) as info:
        trainer.fit(Model(), data)
    assert info.value is bug
    (rec,) = trackhooks.open_store(store_path).runs(experiment="exc")
    assert rec.status == "failed" and 0 in _epochs_recorded(rec)


def test_keras_autolog_user_exception_and_ctrl_c(store_path):
    pytest.importorskip("trackhooks_keras")
    import keras
    from trackhooks_keras import autolog

    bug = UserBug("keras user bug")

    class Boom(keras.callbacks.Callback):
        def __init__(self, exc):
            super().__init__()
            self.exc = exc

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise self.exc

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 1))
    autolog(experiment="exc")
    try:
        for exc in (bug, KeyboardInterrupt()):
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            with pytest.raises(type(exc)) as info:
                model.fit(x, y, epochs=5, verbose=0, callbacks=[Boom(exc)])
            assert info.value is exc
    finally:
        autolog(disable=True)
    runs = trackhooks.open_store(store_path).runs(experiment="exc")
    assert [r.status for r in runs] == ["failed", "killed"]
    assert all(0 in _epochs_recorded(r) for r in runs)  # epoch 1 may end in Boom before it is logged


def test_xgboost_user_exception_and_ctrl_c(store_path):
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("trackhooks_xgboost")
    from trackhooks_xgboost import TrackhooksCallback

    class Boom(xgb.callback.TrainingCallback):
        def __init__(self, exc):
            super().__init__()
            self.exc = exc

        def after_iteration(self, model, epoch, evals_log):
            if epoch == 3:
                raise self.exc
            return False

    rng = np.random.default_rng(0)
    dtrain = xgb.DMatrix(rng.normal(size=(100, 4)), label=rng.normal(size=100))
    for exc in (UserBug("xgboost user bug"), KeyboardInterrupt()):
        with pytest.raises(type(exc)) as info:
            xgb.train({"max_depth": 2, "nthread": 1}, dtrain, num_boost_round=20, evals=[(dtrain, "train")],
                      verbose_eval=False, callbacks=[TrackhooksCallback(experiment="exc"), Boom(exc)])
        assert info.value is exc
    runs = trackhooks.open_store(store_path).runs(experiment="exc")
    assert [r.status for r in runs] == ["failed", "killed"]
    assert all({0, 1, 2} <= _epochs_recorded(r) for r in runs)


def test_sklearn_user_exception_and_ctrl_c(store_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("trackhooks_sklearn")
    from sklearn.base import BaseEstimator, RegressorMixin
    from trackhooks_sklearn import track

    raised: list[BaseException] = []

    class Failing(RegressorMixin, BaseEstimator):
        """A user's estimator whose fit raises (not a param: sklearn's clone would copy it)."""

        def fit(self, X, y):
            raise raised[-1]

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    for exc in (UserBug("sklearn user bug"), KeyboardInterrupt()):
        raised.append(exc)
        with pytest.raises(type(exc)) as info:
            track(Failing(), experiment="exc").fit(X, y)
        assert info.value is exc
    runs = trackhooks.open_store(store_path).runs(experiment="exc")
    assert [r.status for r in runs] == ["failed", "killed"]
