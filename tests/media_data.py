"""Rich records for the report and UI tests, logged with the real ``run.log_*`` API into a real
store and read back through its read API (``rec.media_keys()``, ``rec.media(key)``)."""

from __future__ import annotations

import math

import numpy as np

import trackhooks

XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"


def image(step: int, size: int = 32) -> np.ndarray:
    """An RGB image that differs per step (a bar that moves, a colour that shifts)."""
    a = np.zeros((size, size, 3), dtype=np.uint8)
    a[..., 0] = (step * 37) % 256
    a[:, (step * 3) % size, 1] = 255
    a[(step * 5) % size, :, 2] = 255
    return a


def fill(store: str, *, n_images: int = 10) -> tuple:
    """Two runs: "cnn-a" with every kind, "cnn-b" with some of the same keys at other steps."""
    rng = np.random.default_rng(0)
    with trackhooks.start_run("media", "cnn-a", params={"lr": 0.1}, store=store) as a:
        for s in range(n_images):
            a.log_image("samples", image(s), step=s, epoch=s // 5, caption=f"prediction {s} {XSS}")
            vals = rng.normal(loc=s * 0.5, scale=1.0, size=2000)
            vals[:3] = np.nan
            a.log_histogram("weights/fc1", vals, step=s, epoch=s // 5, bins=32)
            a.log_metric("loss", 1 / (s + 1), step=s)
        labels = ["cat", "dog", XSS]
        for e in range(3):
            y_true = [0] * 10 + [1] * 10 + [2] * 10
            y_pred = [0] * (8 + e) + [1] * (2 - e) + [1] * 10 + [2] * 5 + [0] * 5
            a.log_confusion_matrix("val_confusion", [labels[i] for i in y_true], [labels[i] for i in y_pred],
                                   labels=labels, step=e, epoch=e)
        fpr = [0.0, 0.1, 0.2, 0.5, 1.0]
        tpr = [0.0, 0.6, 0.8, 0.9, 1.0]
        a.log_curve("roc", fpr, tpr, step=0, x_label="fpr", y_label="tpr")
        # a family: one-vs-rest precision-recall curves per class, one panel with both overlaid
        a.log_curve("pr_curve/dog", [0.0, 0.5, 1.0], [1.0, 1.0, 0.5], step=0, x_label="recall", y_label="precision")
        a.log_curve("pr_curve/cat", [0.0, 1.0], [1.0, 1.0], step=0, x_label="recall", y_label="precision")
        a.log_curve("lr_schedule", list(range(10)), [math.exp(-i / 3) for i in range(10)], step=0,
                    x_label="epoch", y_label="lr")
        a.log_table("predictions", [{"id": i, "label": ["b", "a", "c", XSS][i % 4], "score": [0.5, 2.0, -1.0, 10.0][i % 4]}
                                    for i in range(8)], step=0)
        a.log_table(XSS, {XSS: [XSS], "n": [1]}, step=0)  # a key, a column name and a cell
    with trackhooks.start_run("media", "cnn-b", params={"lr": 0.01}, store=store) as b:
        for s in (0, 5, 10):
            b.log_image("samples", image(100 + s), step=s, caption=f"b {s}")
        b.log_confusion_matrix("val_confusion", ["cat", "dog"], ["dog", "dog"], labels=["cat", "dog", XSS], step=0)
    return a, b


def live_writer(store: str, stop, started, key: str = "live_samples") -> None:
    """Log an image every 0.1 s (flushed) until ``stop`` is set; ``started`` is set with the run id
    once the first one is durable."""
    with trackhooks.start_run("media", "live", store=store) as run:
        s = 0
        while not stop.is_set():
            run.log_image(key, image(s), step=s)
            run.flush()
            if s == 0:
                started.run_id = run.id
                started.set()
            s += 1
            stop.wait(0.1)


def roc_auc() -> float:
    """The trapezoid area of the "roc" curve fill() logs."""
    fpr = [0.0, 0.1, 0.2, 0.5, 1.0]
    tpr = [0.0, 0.6, 0.8, 0.9, 1.0]
    return sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(4))
