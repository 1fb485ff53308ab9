"""trackhooks-keras against real Keras 3 (torch backend, set in tests/conftest.py) on sklearn's iris.

Fits are tiny (150 rows, 3 batches an epoch, 2-3 epochs): this machine is slow and shared.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import trackhooks  # noqa: E402
from trackhooks import writer as _writer  # noqa: E402
from trackhooks_keras import TrackhooksCallback, autolog  # noqa: E402
from trackhooks_keras import patching  # noqa: E402

BATCH = 50


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype("float32")
    order = np.random.default_rng(0).permutation(len(X))
    return X[order], y[order].astype("int64")


def make_model(lr=0.05):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(autouse=True)
def clean_state():
    """Every test starts without autolog and with a fresh warn-once memo (it is process-wide)."""
    _writer.warn_once.__defaults__[0].clear()
    yield
    autolog(disable=True)


def all_runs(store_path):
    if not os.path.exists(store_path):  # nothing was ever logged there
        return []
    return trackhooks.open_store(store_path).runs()


def only_run(store_path):
    runs = all_runs(store_path)
    assert len(runs) == 1, [r.id for r in runs]
    return runs[0]


# ---- plugin shape ----------------------------------------------------------------------------


def test_plugin_module_does_not_import_keras():
    code = ("import sys, trackhooks_keras.plugin, trackhooks_keras; "
            "print('keras' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_entry_point_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="trackhooks")}
    assert eps.get("keras") == "trackhooks_keras.plugin"


def test_trackhooks_autolog_calls_plugin_and_disable_restores(store_path, iris):
    X, y = iris
    assert "keras" in trackhooks.autolog("keras", log_model=False)
    assert getattr(keras.Model.fit, "_trackhooks_wrapped", False)
    trackhooks.autolog("keras", disable=True)
    assert "fit" not in keras.Model.__dict__ and "evaluate" not in keras.Model.__dict__
    make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert all_runs(store_path) == []


# ---- explicit callback -----------------------------------------------------------------------


def test_callback_records_params_epoch_metrics_and_artifacts(store_path, iris):
    X, y = iris
    model = make_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    cb = TrackhooksCallback(experiment="iris", name="dense")
    model.fit(X, y, epochs=2, batch_size=BATCH, verbose=0, validation_data=(X[:30], y[:30]), callbacks=[cb])

    rec = only_run(store_path)
    assert (rec.status, rec.experiment, rec.name) == ("finished", "iris", "dense")
    assert rec.tags["framework"] == "keras" and rec.tags["keras.backend"] == "torch"
    p = rec.params
    assert p["model.class"] == "Sequential"
    assert p["model.params_total"] == model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    assert p["model.params_trainable"] == p["model.params_total"]
    assert p["optimizer.class"] == "Adam"
    assert p["optimizer.learning_rate.class"] == "ExponentialDecay"
    assert p["optimizer.learning_rate.initial_learning_rate"] == 0.05
    assert p["optimizer.learning_rate.decay_steps"] == 3
    assert p["loss"] == "sparse_categorical_crossentropy"
    assert p["compile.metrics"] == ["accuracy"]
    assert p["fit.epochs"] == 2 and p["fit.steps_per_epoch"] == 3

    steps_per_epoch = math.ceil(len(X) / BATCH)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_duration_s"):
        series = rec.metric(key)
        assert series.epochs == [0, 1], key
        assert series.steps == [steps_per_epoch, 2 * steps_per_epoch], key  # optimizer iterations so far
    hist = model.history.history
    assert rec.metric("val_loss").values == pytest.approx(hist["val_loss"])
    # the schedule halves every 3 steps: lr after 3 and 6 steps
    assert rec.metric("lr").values == pytest.approx([0.025, 0.0125], rel=1e-4)
    assert not [k for k in rec.metric_keys() if k.startswith("batch_")]

    arts = {a.name: a for a in rec.artifacts()}
    with open(arts["model_summary.txt"].path, encoding="utf-8") as f:
        assert "Total params" in f.read()
    with open(arts["model_architecture.json"].path, encoding="utf-8") as f:
        assert json.load(f)["class_name"] == "Sequential"
    assert "model.keras" not in arts  # log_model is off by default


def test_default_callback_keeps_keras_async_batch_path():
    # Keras 3.x: CallbackList._configure_async_dispatch checks utils.is_default(cb.on_train_batch_end)
    if not hasattr(keras.callbacks.CallbackList([]), "_async_train"):
        pytest.skip("this Keras has no asynchronous batch-hook dispatch")
    model = make_model()
    default = TrackhooksCallback()
    assert keras.src.utils.is_default(default.on_train_batch_end)
    cl = keras.callbacks.CallbackList([default], model=model)
    assert cl._async_train  # Keras' own flag: batch hooks dispatched without a sync per batch
    batched = TrackhooksCallback(log_every_n_batches=2)
    assert not keras.src.utils.is_default(batched.on_train_batch_end)
    # the batch hook only appends to trackhooks' buffer, so it declares itself async-safe
    assert keras.callbacks.CallbackList([batched], model=model)._async_train


def test_batch_metrics_only_when_asked(store_path, iris):
    X, y = iris
    make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0,
                     callbacks=[TrackhooksCallback(log_every_n_batches=2)])
    rec = only_run(store_path)
    series = rec.metric("batch_loss")
    assert series.steps == [2, 4, 6]  # global optimizer steps divisible by 2
    assert series.epochs == [0, 1, 1]
    assert "batch_accuracy" in rec.metric_keys()
    with pytest.raises(ValueError):
        TrackhooksCallback(log_every_n_batches=0)


def test_given_run_is_used_and_not_finished(store_path, iris):
    X, y = iris
    with trackhooks.start_run(experiment="mine", params={"seed": 0}) as run:
        make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[TrackhooksCallback(run=run)])
        assert run.status == "running"
        run.log_metric("after_fit", 1.0)
    rec = only_run(store_path)
    assert rec.status == "finished" and rec.params["seed"] == 0 and rec.params["model.class"] == "Sequential"
    assert {"loss", "after_fit"} <= set(rec.metric_keys())


def test_evaluate_after_fit_goes_into_the_same_run(store_path, iris):
    X, y = iris
    model = make_model()
    cb = TrackhooksCallback()
    model.fit(X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[cb])
    result = model.evaluate(X, y, batch_size=BATCH, verbose=0, callbacks=[cb], return_dict=True)
    rec = only_run(store_path)
    assert rec.status == "finished"
    assert rec.metric("test_loss").values == pytest.approx([result["loss"]])
    assert rec.metric("test_accuracy").steps == [6] and rec.metric("test_accuracy").epochs == [1]


def test_early_stopping_facts(store_path, iris):
    X, y = iris
    # mode="max" on a falling loss: epoch 0 is the best, epoch 1 exhausts patience=1 and stops
    es = keras.callbacks.EarlyStopping(monitor="loss", mode="max", patience=1, restore_best_weights=True)
    model = make_model()
    model.fit(X, y, epochs=5, batch_size=BATCH, verbose=0, callbacks=[TrackhooksCallback(), es])
    rec = only_run(store_path)
    assert rec.metric("loss").epochs == [0, 1]
    assert rec.metric("early_stopping.stopped").values == [1.0]
    assert rec.metric("early_stopping.stopped_epoch").values == [1.0]
    assert rec.metric("early_stopping.best_epoch").values == [0.0]
    assert rec.metric("early_stopping.best").values == pytest.approx([rec.metric("loss").values[0]])
    assert rec.metric("early_stopping.restored_best_weights").values == [1.0]
    assert rec.params["early_stopping.monitor"] == "loss" and rec.params["early_stopping.patience"] == 1


def test_model_checkpoint_files_recorded_with_best_flag(store_path, iris, tmp_path):
    X, y = iris
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}.weights.h5"), monitor="val_loss",
                                           save_weights_only=True)
    # the tracker first, so it must catch files written by a callback that runs after it
    make_model().fit(X, y, epochs=3, batch_size=BATCH, verbose=0, validation_data=(X[:30], y[:30]),
                     callbacks=[TrackhooksCallback(), ckpt])
    rec = only_run(store_path)
    cps = sorted(rec.checkpoints(), key=lambda c: c.epoch)
    assert [os.path.basename(c.path) for c in cps] == ["ck-01.weights.h5", "ck-02.weights.h5", "ck-03.weights.h5"]
    assert [c.epoch for c in cps] == [0, 1, 2] and [c.step for c in cps] == [3, 6, 9]
    val = rec.metric("val_loss").values
    assert [c.metrics["val_loss"] for c in cps] == pytest.approx(val)
    assert [c.best for c in cps].count(True) == 1
    assert cps[int(np.argmin(val))].best
    assert all(c.size and c.sha256 for c in cps)


def test_per_batch_model_checkpoint_recorded(store_path, iris, tmp_path):
    X, y = iris
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch}-{batch}.weights.h5"), save_freq=2,
                                           save_weights_only=True, monitor="loss")
    make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[ckpt, TrackhooksCallback()])
    cps = only_run(store_path).checkpoints()
    assert [os.path.basename(c.path) for c in cps] == ["ck-1-2.weights.h5"]
    assert cps[0].epoch == 0 and cps[0].step == 2 and os.path.exists(cps[0].path)


def test_save_best_only_checkpoint_is_best(store_path, iris, tmp_path):
    X, y = iris
    path = tmp_path / "best.keras"
    ckpt = keras.callbacks.ModelCheckpoint(str(path), monitor="loss", save_best_only=True)
    make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[ckpt, TrackhooksCallback()])
    cps = only_run(store_path).checkpoints()
    assert len(cps) == 2 and all(c.path == str(path) for c in cps)
    assert [c.best for c in sorted(cps, key=lambda c: c.epoch)] == [False, True]  # the later one is best


def test_log_model_saves_keras_file(store_path, iris, tmp_path):
    import shutil

    X, y = iris
    model = make_model()
    model.fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[TrackhooksCallback(log_model=True)])
    art = {a.name: a for a in only_run(store_path).artifacts()}["model.keras"]
    copy = shutil.copy(art.path, tmp_path / "model.keras")  # Keras loads by extension; the store is content-addressed
    loaded = keras.models.load_model(copy)
    np.testing.assert_allclose(loaded.predict(X[:5], verbose=0), model.predict(X[:5], verbose=0), rtol=1e-5)


def test_explicit_callback_cannot_see_fit_failure(store_path, iris):
    """DESIGN.md: Keras has no exception hook; without autolog the run stays running."""
    X, y = iris

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    cb = TrackhooksCallback()
    with pytest.raises(RuntimeError, match="boom"):
        make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[cb, Boom()])
    cb.run.flush()
    assert only_run(store_path).status == "running"
    # the dangling run is still the process' active run, but a later fit does not adopt it
    assert trackhooks.active_run() is cb.run
    later = TrackhooksCallback()
    make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[later])
    assert later.run.id != cb.run.id and later.run.status == "finished"
    cb.run.finish("failed")  # do not leave an active run behind for the next test


def test_active_user_run_is_adopted(store_path, iris):
    X, y = iris
    with trackhooks.start_run(experiment="outer") as run:
        make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[TrackhooksCallback()])
        assert run.status == "running"
    rec = only_run(store_path)
    assert rec.experiment == "outer" and "loss" in rec.metric_keys() and rec.params["model.class"] == "Sequential"


def test_store_failure_warns_and_training_goes_on(tmp_path, iris):
    X, y = iris
    bad = tmp_path / "not-a-store"
    bad.write_text("a file where a store directory should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0,
                                   callbacks=[TrackhooksCallback(store=str(bad))])
    assert len(history.history["loss"]) == 2
    mine = [w for w in caught if "trackhooks" in str(w.message)]
    assert len(mine) == 1 and "starting the run" in str(mine[0].message)


# ---- autolog ---------------------------------------------------------------------------------


def test_autolog_records_fit_arguments_and_datasets(store_path, iris):
    X, y = iris
    autolog(experiment="auto")
    model = make_model()
    model.fit(X, y, epochs=2, batch_size=BATCH, verbose=0, validation_split=0.2, class_weight={0: 1, 1: 1, 2: 2})
    rec = only_run(store_path)
    assert rec.experiment == "auto" and rec.status == "finished"
    p = rec.params
    assert p["fit.batch_size"] == BATCH and p["fit.validation_split"] == 0.2
    assert p["fit.class_weight"] is True and p["fit.sample_weight"] is False and p["fit.shuffle"] is True
    assert p["fit.steps_per_epoch"] == 3  # 120 training rows after the split
    ds = {(d.context, d.name): d for d in rec.datasets()}
    assert ds[("train", "x")].n_rows == 120 and ds[("validation", "x")].n_rows == 30
    assert ds[("train", "y")].n_rows == 120 and ds[("validation", "y")].n_rows == 30
    # the digest is the content Keras trained on: the first 80 % of the rows
    with trackhooks.start_run(experiment="check") as check:
        same = check.log_dataset(X[:120], name="x")
    assert same.digest == ds[("train", "x")].digest
    assert rec.id in {r.id for r in trackhooks.open_store(store_path).runs_using(same.digest)}
    assert "samples_per_s" in rec.metric_keys()


def test_autolog_infers_batch_size_from_datasets_and_generators(store_path, iris):
    import torch

    X, y = iris
    autolog()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return X[i * 30:(i + 1) * 30], y[i * 30:(i + 1) * 30]

    def gen():
        while True:
            for i in range(0, len(X), 25):
                yield X[i:i + 25], y[i:i + 25]

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
                                         batch_size=75)
    make_model().fit(Batches(), epochs=1, verbose=0)
    history = make_model().fit(gen(), epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    make_model().fit(loader, epochs=1, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 1
    runs = trackhooks.open_store(store_path).runs()
    assert [r.params.get("fit.batch_size") for r in runs] == [30, 25, 75]
    assert runs[0].params["dataset.train.cardinality"] == 5
    assert runs[0].params["dataset.train.type"].endswith("Batches")
    assert runs[1].params["dataset.train.type"] == "builtins.generator"
    assert runs[1].metric("loss").steps == [2]  # the peeked first batch was still trained on
    assert runs[2].params["dataset.train.cardinality"] == 2


def test_describe_fit_follows_keras_rules(iris):
    from trackhooks_keras.fitdata import describe_fit

    X, y = iris
    info = describe_fit({"x": {"a": X, "b": X[:, :2]}, "y": y, "batch_size": None, "steps_per_epoch": 4})
    assert info.params["fit.batch_size"] == 38  # Keras: ceil(rows / steps) when only steps are given
    assert [(c, n) for c, n, _ in info.arrays] == [("train", "x.a"), ("train", "x.b"), ("train", "y")]
    assert info.n_samples is None  # steps_per_epoch decides how many rows an epoch sees
    info = describe_fit({"x": X, "y": y, "batch_size": None, "validation_data": iter([])})
    assert info.params["fit.batch_size"] == 32 and info.n_samples == 150
    assert info.params["dataset.validation.type"] == "builtins.list_iterator"


def test_autolog_evaluate_after_fit_same_run(store_path, iris):
    X, y = iris
    autolog()
    model = make_model()
    model.fit(X, y, epochs=2, batch_size=BATCH, verbose=0, validation_data=(X[:30], y[:30]))
    loss, acc = model.evaluate(X[30:], y[30:], verbose=0)
    rec = only_run(store_path)
    assert rec.status == "finished"
    assert rec.metric("test_loss").values == pytest.approx([loss])
    assert rec.metric("test_accuracy").values == pytest.approx([acc])
    assert rec.metric("val_loss").epochs == [0, 1]  # validation inside fit did not add test_ metrics
    test_sets = {d.name: d for d in rec.datasets() if d.context == "test"}
    assert test_sets["x"].n_rows == 120
    make_model().evaluate(X, y, verbose=0)  # never fit: nothing to attach to, nothing recorded
    assert len(trackhooks.open_store(store_path).runs()) == 1


def test_autolog_never_adds_a_second_callback(store_path, iris):
    X, y = iris
    autolog()
    autolog()  # twice: still one wrapper
    cb = TrackhooksCallback(name="explicit")
    make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[cb])
    rec = only_run(store_path)
    assert rec.name == "explicit"
    assert len(rec.metric("loss")) == 2
    assert rec.params["fit.batch_size"] == BATCH  # autolog handed the fit arguments to the user's callback


def test_autolog_marks_failed_and_reraises_unchanged(store_path, iris):
    X, y = iris
    autolog()
    error = RuntimeError("user code failed")

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise error

    with pytest.raises(RuntimeError) as info:
        make_model().fit(X, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[Boom()])
    assert info.value is error
    assert only_run(store_path).status == "failed"


def test_autolog_keyboard_interrupt_is_killed(store_path, iris):
    X, y = iris
    autolog()

    class Stop(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[Stop()])
    assert only_run(store_path).status == "killed"


def test_autolog_internal_failure_warns_once_and_trains_unpatched(store_path, iris, monkeypatch):
    X, y = iris
    autolog()
    from trackhooks_keras import fitdata

    def broken(args):
        raise ZeroDivisionError("internal")

    monkeypatch.setattr(fitdata, "describe_fit", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h1 = make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
        h2 = make_model().fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    assert len(h1.history["loss"]) == len(h2.history["loss"]) == 1
    assert len([w for w in caught if "trackhooks" in str(w.message)]) == 1
    assert all_runs(store_path) == []


def test_autolog_patch_failure_warns_and_leaves_keras_alone(monkeypatch):
    def broken():
        raise AttributeError("no such method")

    monkeypatch.setattr(patching, "_patch", broken)
    with pytest.warns(RuntimeWarning, match="trains unpatched"):
        autolog()
    assert "fit" not in keras.Model.__dict__
    with pytest.raises(TypeError):
        autolog(no_such_option=1)


def test_a_loadable_backend_is_chosen_only_when_none_is_configured(tmp_path):
    import subprocess
    import sys

    code = ("import os, trackhooks_keras; trackhooks_keras.TrackhooksCallback; import keras; "
            "print(os.environ.get('KERAS_BACKEND'), keras.backend.backend())")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no keras.json there
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["torch", "torch"]
    (tmp_path / "keras-home").mkdir(exist_ok=True)
    (tmp_path / "keras-home" / "keras.json").write_text('{"backend": "torch"}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["None", "torch"]  # a configured, installed backend is left alone
