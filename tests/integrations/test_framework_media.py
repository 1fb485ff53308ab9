"""Keras and Lightning rich records: opt-in weight (and gradient) histograms, and media logged by
user code through ``trackhooks.active_run()`` into the run the integration opened. Real frameworks,
sklearn's bundled digits."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import trackhooks  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from trackhooks.sink import Sink  # noqa: E402

X, Y = load_digits(return_X_y=True)
X = (X[:256] / 16.0).astype(np.float32)
Y = Y[:256]


class Capture(Sink):
    name = "capture"

    def __init__(self):
        self.media = []

    def write(self, batch):
        self.media.extend(batch.media)

    def of(self, key):
        return [m for m in self.media if m.key == key]

    def keys(self):
        return sorted({m.key for m in self.media})


class Digits(L.LightningModule):
    def __init__(self, log_samples: bool = False):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
        self.log_samples = log_samples

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def on_train_epoch_end(self):
        run = trackhooks.active_run()  # the run TrackhooksCallback opened for this fit
        if self.log_samples and run is not None:
            x = torch.tensor(X[:4])
            images = x.reshape(4, 1, 8, 8)  # a tensor stays on its device; no host sync here
            run.log_image("samples", torch.cat(list(images), dim=2), epoch=self.current_epoch,
                          caption=f"pred {self.net(x).argmax(1).tolist()}")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(cb, epochs=3):
    return L.Trainer(max_epochs=epochs, callbacks=[cb], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                     limit_train_batches=4)


def _loader():
    return DataLoader(TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_size=32)


def test_lightning_weight_and_gradient_histograms(store_path):
    from trackhooks_lightning import TrackhooksCallback

    cap = Capture()
    model = Digits()
    _trainer(TrackhooksCallback(mirrors=[cap], log_histograms=2, log_gradient_histograms=3)).fit(model, _loader())
    names = [n for n, _ in model.named_parameters()]
    assert {k for k in cap.keys() if k.startswith("weights/")} == {f"weights/{n}" for n in names}
    w = cap.of("weights/net.0.weight")
    assert [m.epoch for m in w] == [0, 2] and [m.step for m in w] == [3, 11]
    last = w[-1].data
    assert last["count"] == 64 * 8 and last["min"] == pytest.approx(model.net[0].weight.min().item())
    g = cap.of("gradients/net.2.bias")
    assert [m.step for m in g] == [0, 3, 6, 9] and g[0].data["count"] == 10
    assert all(m.kind == "histogram" for m in cap.media)


def test_lightning_histograms_off_by_default_and_validated(store_path):
    from trackhooks_lightning import TrackhooksCallback

    cap = Capture()
    _trainer(TrackhooksCallback(mirrors=[cap]), epochs=1).fit(Digits(), _loader())
    assert cap.media == []
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError):
            TrackhooksCallback(log_histograms=bad)
        with pytest.raises(ValueError):
            TrackhooksCallback(log_gradient_histograms=bad)


def test_lightning_active_run_logs_sample_images(store_path):
    from trackhooks_lightning import TrackhooksCallback

    cap = Capture()
    cb = TrackhooksCallback(mirrors=[cap])
    _trainer(cb, epochs=2).fit(Digits(log_samples=True), _loader())
    imgs = cap.of("samples")
    assert [m.epoch for m in imgs] == [0, 1] and [m.step for m in imgs] == [0, 1]
    assert all(m.run_id == cb.run_id for m in imgs)
    assert (imgs[0].width, imgs[0].height) == (32, 8) and imgs[0].data["caption"].startswith("pred [")


def _keras_model():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(10, name="out")], name="digits")
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class SamplePredictions(keras.callbacks.Callback):
    """Sample predictions as images every epoch, into the run trackhooks opened for this fit."""

    def on_epoch_end(self, epoch, logs=None):
        run = trackhooks.active_run()
        if run is not None:
            pred = np.asarray(self.model.predict(X[:3], verbose=0)).argmax(1)
            run.log_image("samples", np.concatenate(list(X[:3].reshape(3, 8, 8)), axis=1), epoch=epoch,
                          caption=f"pred {pred.tolist()}")


def test_keras_weight_histograms_and_active_run_images(store_path):
    from trackhooks_keras import TrackhooksCallback

    cap = Capture()
    model = _keras_model()
    cb = TrackhooksCallback(mirrors=[cap], log_histograms=2)
    model.fit(X, Y, epochs=3, batch_size=64, verbose=0, callbacks=[cb, SamplePredictions()])
    trackhooks_run = cb.run
    assert trackhooks_run.status == "finished"
    hist_keys = {k for k in cap.keys() if k.startswith("weights/")}
    assert hist_keys == {"weights/digits/hidden/kernel", "weights/digits/hidden/bias", "weights/digits/out/kernel",
                         "weights/digits/out/bias"}
    k = cap.of("weights/digits/hidden/kernel")
    assert [m.epoch for m in k] == [0, 2] and [m.step for m in k] == [4, 12]
    assert k[-1].data["count"] == 64 * 8
    assert k[-1].data["max"] == pytest.approx(float(np.max(keras.ops.convert_to_numpy(model.layers[0].kernel))))
    imgs = cap.of("samples")
    assert [m.epoch for m in imgs] == [0, 1, 2] and all(m.run_id == trackhooks_run.id for m in imgs)
    assert (imgs[0].width, imgs[0].height) == (24, 8)


def test_keras_autolog_log_histograms_option(store_path):
    from trackhooks_keras import autolog

    import trackhooks.run as run_mod

    cap = Capture()
    orig = run_mod._mirror_list
    run_mod._mirror_list = lambda mirrors: [cap] if mirrors is None else orig(mirrors)
    try:
        autolog(log_histograms=1)
        _keras_model().fit(X, Y, epochs=2, batch_size=128, verbose=0)
    finally:
        autolog(disable=True)
        run_mod._mirror_list = orig
    assert [m.epoch for m in cap.of("weights/digits/out/bias")] == [0, 1]
    with pytest.raises((TypeError, ValueError)):
        autolog(log_histograms=0)
    autolog(disable=True)


def test_lightning_autolog_log_histograms_option(store_path):
    from trackhooks_lightning import autolog

    import trackhooks.run as run_mod

    cap = Capture()
    orig = run_mod._mirror_list
    run_mod._mirror_list = lambda mirrors: [cap] if mirrors is None else orig(mirrors)
    try:
        autolog(log_histograms=1, log_gradient_histograms=2)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", devices=1, limit_train_batches=2)
        trainer.fit(Digits(), _loader())
    finally:
        autolog(disable=True)
        run_mod._mirror_list = orig
    assert [m.epoch for m in cap.of("weights/net.0.bias")] == [0, 1]
    assert [m.step for m in cap.of("gradients/net.0.bias")] == [0, 2]
