"""Train a small Keras 3 model on sklearn's digits two ways and record each training as a trackhooks run.

1. an explicit TrackhooksCallback next to ModelCheckpoint and EarlyStopping, then evaluate() with the
   same callback: test metrics land in the run of that fit;
2. autolog(): fit and evaluate recorded without touching the calls, with fit arguments and the data.

Runs go to $TRACKHOOKS_URI or ./.trackhooks; look at them with `trackhooks runs` / `trackhooks show RUN`.
Any Keras 3 backend works (KERAS_BACKEND=torch, jax or tensorflow); torch is the default here.
"""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import trackhooks  # noqa: E402
from trackhooks_keras import TrackhooksCallback, autolog  # noqa: E402

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def make_model() -> keras.Model:
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=50, decay_rate=0.8)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


# 1. explicit callback: one run per fit
ckpt_dir = tempfile.mkdtemp(prefix="keras-ckpt-")
callback = TrackhooksCallback(experiment="keras-digits", log_every_n_batches=20, log_model=True)
model = make_model()
model.fit(X_train, y_train, epochs=5, batch_size=64, validation_split=0.2, verbose=0, callbacks=[
    callback,
    keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "epoch-{epoch:02d}.keras"), monitor="val_loss"),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True),
])
model.evaluate(X_test, y_test, verbose=0, callbacks=[callback])

rec = trackhooks.open_store(callback.run.store).run(callback.run.id)
best = [c for c in rec.checkpoints() if c.best]
print(f"callback run {rec.id[:8]} {rec.status}: val_loss {rec.metric('val_loss').last:.4f}, "
      f"test_accuracy {rec.metric('test_accuracy').last:.3f}, {len(rec.checkpoints())} checkpoints "
      f"(best: {os.path.basename(best[0].path) if best else None}), artifacts {[a.name for a in rec.artifacts()]}")

# 2. autolog: every fit gets a callback, evaluate after it adds test_* metrics to the same run
autolog(experiment="keras-digits")
model = make_model()
model.fit(X_train, y_train, epochs=3, batch_size=64, validation_data=(X_test, y_test), verbose=0)
model.evaluate(X_test, y_test, verbose=0)
autolog(disable=True)

rec = trackhooks.open_store(callback.run.store).runs(experiment="keras-digits")[-1]
print(f"autolog run {rec.id[:8]} {rec.status}: batch_size {rec.params['fit.batch_size']}, "
      f"test_loss {rec.metric('test_loss').last:.4f}, data "
      f"{[(d.context, d.name, d.n_rows) for d in rec.datasets()]}")
