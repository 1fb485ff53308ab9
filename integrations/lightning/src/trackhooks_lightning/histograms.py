"""Weight and gradient histograms of a LightningModule (opt-in: ``log_histograms=N``,
``log_gradient_histograms=M`` on the callback or autolog).

Each parameter (or its ``.grad``) goes to ``run.log_histogram``, which copies it *on its device*
(``detach().clone()``, no host sync on the training thread); the writer thread bins the copy on the
same device and moves only the bin counts (a few hundred bytes) to the host, once per histogram.
Keys: ``weights/<parameter name>`` and ``gradients/<parameter name>``.
"""

from __future__ import annotations

from typing import Any


def check_every(name: str, value: Any) -> int | None:
    if value is None or value is False:
        return None
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int (every N) or None, got {value!r}")
    return value


def log_weight_histograms(run: Any, module: Any, step: int, epoch: int | None) -> None:
    for name, p in module.named_parameters():
        run.log_histogram(f"weights/{name}", p, step=step, epoch=epoch)


def log_gradient_histograms(run: Any, module: Any, step: int, epoch: int | None) -> None:
    for name, p in module.named_parameters():
        if p.grad is not None:
            run.log_histogram(f"gradients/{name}", p.grad, step=step, epoch=epoch)
