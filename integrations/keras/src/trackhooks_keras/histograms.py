"""Weight histograms of a Keras model (opt-in: ``log_histograms=N`` on the callback or autolog).

Every N epochs each weight variable goes to ``run.log_histogram`` under ``weights/<variable path>``
(``dense/kernel``). On the torch backend the variable's tensor is copied on its device by the core
(no host sync on the training thread) and binned on the writer thread; on other backends the value
is converted to numpy first (one copy per variable, every N epochs).
"""

from __future__ import annotations

from typing import Any


def check_every(value: Any) -> int | None:
    if value is None or value is False:
        return None
    if type(value) is not int or value < 1:
        raise ValueError(f"log_histograms must be a positive int (every N epochs) or None, got {value!r}")
    return value


def log_weight_histograms(run: Any, model: Any, step: int | None, epoch: int) -> None:
    import keras

    torch_backend = keras.backend.backend() == "torch"
    seen: set[str] = set()
    for w in model.weights:
        key = f"weights/{getattr(w, 'path', None) or w.name}"
        if key in seen:
            continue
        seen.add(key)
        value = w.value if torch_backend else keras.ops.convert_to_numpy(w.value)
        run.log_histogram(key, value, step=step, epoch=epoch)
