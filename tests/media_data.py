"""Rich records for the report and UI tests, logged with the real ``run.log_*`` API.

Until the store's media table lands (``RunRecord.media_keys``/``media``), ``read_back`` captures
the MediaEvents the writer produces through a mirror sink registered with the real plugin manager,
keeps their files in a directory, and gives RunRecord the two read methods of DESIGN.md over them.
With the store's own read API present it does nothing.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import numpy as np

import trackhooks
from trackhooks.localstore import RunRecord
from trackhooks.sink import Sink

XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
CAPTURE = "mediacapture:tests"
HAS_STORE_MEDIA = hasattr(RunRecord, "media_keys")


class _Capture(Sink):
    name = "media capture (tests)"

    def __init__(self) -> None:
        self.records: dict[str, dict[str, list]] = {}
        self.dir: str | None = None

    def write(self, batch) -> None:
        for e in batch.media:
            path = None
            if e.file is not None:
                path = os.path.join(self.dir or ".", f"{e.sha256}{e.ext or ''}")
                with open(path, "wb") as f:
                    f.write(e.file)
            rec = SimpleNamespace(key=e.key, kind=e.kind, step=e.step, epoch=e.epoch, timestamp=e.time, path=path,
                                  width=e.width, height=e.height, data=e.data)
            self.records.setdefault(e.run_id, {}).setdefault(e.key, []).append(rec)


_CAPTURE = _Capture()


class _Scheme:
    @trackhooks.hookimpl
    def trackhooks_make_sink(self, uri, options):
        return _CAPTURE if uri == CAPTURE else None


def install(file_dir: str) -> list[str]:
    """The mirrors a test's runs need (none once the store reads media itself)."""
    if HAS_STORE_MEDIA:
        return []
    _CAPTURE.dir = file_dir
    pm = trackhooks.plugin_manager()
    if pm.get_plugin("media-capture-tests") is None:
        pm.register(_Scheme(), name="media-capture-tests")

        def media_keys(self):
            return sorted(_CAPTURE.records.get(self.id, {}))

        def media(self, key):
            return list(_CAPTURE.records.get(self.id, {}).get(key, []))

        RunRecord.media_keys = media_keys
        RunRecord.media = media
    return [CAPTURE]


def image(step: int, size: int = 32) -> np.ndarray:
    """An RGB image that differs per step (a bar that moves, a colour that shifts)."""
    a = np.zeros((size, size, 3), dtype=np.uint8)
    a[..., 0] = (step * 37) % 256
    a[:, (step * 3) % size, 1] = 255
    a[(step * 5) % size, :, 2] = 255
    return a


def fill(store: str, file_dir: str, *, n_images: int = 10) -> tuple:
    """Two runs: "cnn-a" with every kind, "cnn-b" with some of the same keys at other steps."""
    mirrors = install(file_dir)
    rng = np.random.default_rng(0)
    with trackhooks.start_run("media", "cnn-a", params={"lr": 0.1}, store=store, mirrors=mirrors) as a:
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
        a.log_curve("lr_schedule", list(range(10)), [math.exp(-i / 3) for i in range(10)], step=0,
                    x_label="epoch", y_label="lr")
        a.log_table("predictions", [{"id": i, "label": ["b", "a", "c", XSS][i % 4], "score": [0.5, 2.0, -1.0, 10.0][i % 4]}
                                    for i in range(8)], step=0)
        a.log_table(XSS, {XSS: [XSS], "n": [1]}, step=0)  # a key, a column name and a cell
    with trackhooks.start_run("media", "cnn-b", params={"lr": 0.01}, store=store, mirrors=mirrors) as b:
        for s in (0, 5, 10):
            b.log_image("samples", image(100 + s), step=s, caption=f"b {s}")
        b.log_confusion_matrix("val_confusion", ["cat", "dog"], ["dog", "dog"], labels=["cat", "dog", XSS], step=0)
    return a, b


def live_writer(store: str, file_dir: str, stop, started, key: str = "live_samples") -> None:
    """Log an image every 0.1 s (flushed) until ``stop`` is set; ``started`` is set with the run id
    once the first one is durable."""
    mirrors = install(file_dir)
    with trackhooks.start_run("media", "live", store=store, mirrors=mirrors) as run:
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
