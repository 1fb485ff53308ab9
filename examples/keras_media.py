"""Rich records from Keras 3: sample predictions as images every epoch (a callback of your own logs
them through ``trackhooks.active_run()`` into the run trackhooks opened), weight histograms every
epoch (``log_histograms=1``), and a confusion matrix after training.

Look at them with ``trackhooks show RUN``, ``trackhooks report -o report.html`` or ``trackhooks ui``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import trackhooks  # noqa: E402
from trackhooks_keras import TrackhooksCallback  # noqa: E402

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]


class SamplePredictions(keras.callbacks.Callback):
    """Eight validation digits side by side with the predicted labels as the caption, every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        run = trackhooks.active_run()
        if run is None:
            return
        pred = self.model.predict(x_val[:8], verbose=0).argmax(1)
        strip = np.concatenate(list(x_val[:8].reshape(8, 8, 8)), axis=1)  # an 8x64 float image in [0, 1]
        run.log_image("val_samples", strip, epoch=epoch, caption="predicted " + " ".join(map(str, pred)))


model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)],
                         name="digits")
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
callback = TrackhooksCallback(experiment="keras-media", log_histograms=1)
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=4, batch_size=64, verbose=0,
          callbacks=[callback, SamplePredictions()])

with trackhooks.start_run(resume=callback.run.id) as run:  # add a record after the fit
    run.log_confusion_matrix("val_confusion_matrix", y_val, model.predict(x_val, verbose=0).argmax(1),
                             labels=list(range(10)))

rec = trackhooks.open_store().run(callback.run.id)
for key in rec.media_keys():
    records = rec.media(key)
    print(f"{key:32} {records[0].kind:17} {len(records)} records")
