"""Rich records end to end: logged by a run, read back through ``open_store(...).run(id).media(key)``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import trackhooks


def read(run):
    return trackhooks.open_store(run.store).run(run.id)


def test_every_kind_round_trips_through_the_store(store_path, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    jpg = tmp_path / "x.jpg"
    Image.fromarray(img).save(jpg)
    fig, ax = plt.subplots(figsize=(2, 2), dpi=30)
    ax.plot([1, 2])
    with trackhooks.start_run() as run:
        run.log_image("img", img, caption="first", epoch=0)
        run.log_image("img", img)  # identical pixels: one stored file
        run.log_image("photo", jpg)
        run.log_figure("fig", fig, step=7)
        run.log_histogram("h", [1.0, 2.0, float("nan")], bins=2)
        run.log_table("t", {"a": [1, 2], "b": ["x", None]})
        run.log_confusion_matrix("cm", ["a", "b"], ["a", "a"])
        run.log_curve("roc", [0, 1], [0, 1], x_label="fpr", y_label="tpr")
    plt.close(fig)
    rec = read(run)
    assert rec.media_keys() == ["cm", "fig", "h", "img", "photo", "roc", "t"]
    a, b = rec.media("img")
    assert (a.kind, a.step, a.epoch, a.width, a.height, a.data) == ("image", 0, 0, 5, 6, {"caption": "first"})
    assert (b.step, b.epoch, b.data) == (1, None, {"caption": None})
    assert a.path == b.path and os.path.isfile(a.path) and a.path.startswith(store_path)
    assert np.array_equal(np.asarray(Image.open(a.path)), img)
    assert a.timestamp <= b.timestamp
    (p,) = rec.media("photo")
    with open(p.path, "rb") as f:
        assert f.read() == jpg.read_bytes()
    (f_,) = rec.media("fig")
    assert (f_.kind, f_.step, f_.width, f_.height) == ("figure", 7, 60, 60)
    (h,) = rec.media("h")
    assert h.path is None and h.width is None
    assert h.data == {"edges": [1.0, 1.5, 2.0], "counts": [1, 1], "min": 1.0, "max": 2.0, "count": 2, "nan": 1,
                      "pos_inf": 0, "neg_inf": 0}
    assert rec.media("t")[0].data == {"columns": ["a", "b"], "rows": [[1, "x"], [2, None]]}
    assert rec.media("cm")[0].data == {"labels": ["a", "b"], "matrix": [[1, 0], [1, 0]]}
    assert rec.media("roc")[0].data == {"x": [0.0, 1.0], "y": [0.0, 1.0], "x_label": "fpr", "y_label": "tpr"}
    assert rec.media("nothing") == []


def test_resume_continues_media_steps_and_kinds(store_path):
    run = trackhooks.start_run()
    run.log_histogram("h", [1.0])
    run.log_histogram("h", [1.0], step=5)
    run.finish()
    again = trackhooks.start_run(resume=run.id)
    again.log_histogram("h", [2.0])
    with pytest.raises(trackhooks.InvalidMediaError):
        again.log_table("h", [])
    again.finish()
    assert [m.step for m in read(run).media("h")] == [0, 5, 6]


DRAIN = r"""
import numpy as np, trackhooks
run = trackhooks.start_run(name="no-finish")
print(run.id, flush=True)
for i in range(30):
    run.log_image("img", np.full((8, 8), i, np.uint8), step=i)
    run.log_histogram("h", np.arange(100.0) + i)
run.log_confusion_matrix("cm", [0, 1], [1, 1])
"""


def test_exit_without_finish_drains_media_into_the_store(store_path):
    env = {**os.environ, "TRACKHOOKS_URI": store_path, "TRACKHOOKS_FLUSH_INTERVAL": "60"}
    out = subprocess.run([sys.executable, "-c", DRAIN], env=env, capture_output=True, text=True, check=True,
                         timeout=120)
    rec = trackhooks.open_store(store_path).run(out.stdout.strip())
    assert rec.status == "finished"
    imgs = rec.media("img")
    assert [m.step for m in imgs] == list(range(30)) and len({m.path for m in imgs}) == 30
    assert np.asarray(Image.open(imgs[-1].path)).max() == 29
    assert [m.data["min"] for m in rec.media("h")] == [float(i) for i in range(30)]
    assert rec.media("cm")[0].data["matrix"] == [[0, 1], [0, 1]]


def test_media_rows_are_json(store_path):
    with trackhooks.start_run() as run:
        run.log_table("t", [{"v": float("inf")}])
    (m,) = read(run).media("t")
    assert m.data["rows"][0][0] == float("inf")
    json.dumps(m.data)  # what the CLI and UI serialise
