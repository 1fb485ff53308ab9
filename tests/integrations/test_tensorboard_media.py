"""Media in the TensorBoard mirror, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest

pytest.importorskip("tensorboard")

import trackhooks  # noqa: E402
from PIL import Image  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from trackhooks import sync  # noqa: E402
from trackhooks_tensorboard import run_dir_name  # noqa: E402


def load(directory) -> EventAccumulator:
    ea = EventAccumulator(str(directory), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


def _log(run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for i in range(3):
        run.log_image("samples", np.full((4, 6, 3), i * 50, np.uint8), step=i * 10)
    run.log_image("gray", np.zeros((5, 5), np.uint8))
    fig, ax = plt.subplots(figsize=(2, 1), dpi=40)
    ax.plot([0, 1])
    run.log_figure("fig", fig)
    plt.close(fig)
    rng = np.random.default_rng(0)
    for s in range(2):
        run.log_histogram("weights/w", rng.normal(size=1000) + s, step=s, bins=16)
    run.log_table("table", [{"a": 1, "b": "x|y"}])
    run.log_confusion_matrix("cm", [0, 1], [1, 1])
    run.log_curve("roc", [0, 1], [0, 1])


def test_live_mirror_images_figures_histograms(store_path, tmp_path):
    logdir = tmp_path / "tb"
    with trackhooks.start_run("tb", "media", mirrors=[f"tensorboard:{logdir}"]) as run:
        _log(run)
    rec = trackhooks.open_store(store_path).run(run.id)
    ea = load(logdir / run_dir_name("media", run.id))
    tags = ea.Tags()
    assert {"samples", "gray", "fig"} <= set(tags["images"])
    assert tags["histograms"] == ["weights/w"]
    imgs = ea.Images("samples")
    assert [e.step for e in imgs] == [0, 10, 20]
    assert (imgs[0].width, imgs[0].height) == (6, 4)
    assert np.asarray(Image.open(io.BytesIO(imgs[2].encoded_image_string)))[0, 0].tolist() == [100, 100, 100]
    stored = rec.media("samples")
    with open(stored[1].path, "rb") as f:
        assert imgs[1].encoded_image_string == f.read()
    assert ea.Images("fig")[0].width == 80 and ea.Images("fig")[0].height == 40
    hs = ea.Histograms("weights/w")
    assert [h.step for h in hs] == [0, 1]
    mine = rec.media("weights/w")[1].data
    hv = hs[1].histogram_value
    assert list(hv.bucket) == [float(c) for c in mine["counts"]] and hv.num == 1000
    assert list(hv.bucket_limit) == pytest.approx(mine["edges"][1:])
    assert hv.min == pytest.approx(mine["min"]) and hv.max == pytest.approx(mine["max"])
    table = ea.Tensors("table")[0].tensor_proto.string_val[0].decode()
    assert "| a | b |" in table and "| 1 | x\\|y |" in table
    cm = ea.Tensors("cm")[0].tensor_proto.string_val[0].decode()
    assert "| **0** | 0 | 1 |" in cm and "| **1** | 0 | 1 |" in cm


def test_sync_replays_media_once(store_path, tmp_path, capsys):
    logdir = tmp_path / "later"
    uri = f"tensorboard:{logdir}"
    run = trackhooks.start_run("tb", "offline")
    run.log_image("img", np.zeros((2, 2), np.uint8))
    run.flush()
    args = argparse.Namespace(store=store_path, to=uri, runs=[], json=True)
    assert sync.main(args) == 0
    run.log_image("img", np.ones((2, 2), np.uint8))
    run.log_histogram("h", [1.0, 2.0])
    run.finish()
    assert sync.main(args) == 0
    assert sync.main(args) == 0  # a second sync adds nothing
    ea = load(logdir / run_dir_name("offline", run.id))
    # each sync appends an event file; TensorBoard orders files by name, so compare as a multiset
    assert sorted(e.step for e in ea.Images("img")) == [0, 1]
    assert [e.step for e in ea.Histograms("h")] == [0]
