"""The report's and the UI's display form of rich records: thinning, the image byte cap, AUC,
escaping inside the page, and the `trackhooks report` options (no browser here; see
test_report_browser.py and test_ui.py for the pages in Chromium)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import trackhooks
from tests import media_data
from trackhooks import mediaview as mv
from trackhooks.report import build_report


def test_thin_indices_evenly_spaced_first_and_last():
    assert mv.thin_indices(5, 10) == [0, 1, 2, 3, 4]
    assert mv.thin_indices(101, 5) == [0, 25, 50, 75, 100]
    idx = mv.thin_indices(1000, 50)
    assert len(idx) == 50 and idx[0] == 0 and idx[-1] == 999 and idx == sorted(set(idx))
    gaps = {b - a for a, b in zip(idx, idx[1:])}
    assert gaps <= {20, 21}
    assert mv.thin_indices(7, 1) == [6] and mv.thin_indices(0, 3) == []


def test_trapezoid_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    score = y * 0.6 + rng.random(300)
    fpr, tpr, _ = metrics.roc_curve(y, score)
    assert mv.trapezoid_auc(list(fpr), list(tpr)) == pytest.approx(metrics.roc_auc_score(y, score), rel=1e-12)
    prec, rec, _ = metrics.precision_recall_curve(y, score)  # recall decreasing
    assert mv.trapezoid_auc(list(rec), list(prec)) == pytest.approx(metrics.auc(rec, prec), rel=1e-12)
    assert mv.trapezoid_auc([0, 1, 0.5], [0, 1, 1]) is None  # x not monotonic: no area
    assert mv.trapezoid_auc([0, None], [0, 1]) is None and mv.trapezoid_auc([0], [1]) is None


def test_curve_type_from_labels_or_key():
    assert mv.curve_type("c", "fpr", "tpr") == "roc"
    assert mv.curve_type("c", "False positive rate", "True positive rate") == "roc"
    assert mv.curve_type("c", "recall", "precision") == "pr"
    assert mv.curve_type("val/roc", "x", "y") == "roc"
    assert mv.curve_type("test_pr_curve", "x", "y") == "pr"
    assert mv.curve_type("lr_schedule", "epoch", "lr") is None
    assert mv.curve_type("precision_at_k", "k", "precision") is None


@pytest.fixture
def media_store(tmp_path):
    store = str(tmp_path / "store")
    media_data.fill(store)
    return store, trackhooks.open_store(store).runs()


def _data(page: str, block: str = "trackhooks-data") -> dict:
    m = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_report_embeds_media_and_stays_inert(media_store):
    store, recs = media_store
    page, info = build_report(recs, store_path=store)
    assert info["media"] == {"keys": 9, "images_embedded": 13, "images_left_out": 0,
                             "image_bytes": info["media"]["image_bytes"], "thinned": []}
    data = _data(page)
    panels = {p["key"]: p for p in data["media"]}
    assert [p["kind"] for p in data["media"]][:1] == ["image"]  # pictures first
    rec = panels["samples"]["series"][0]["records"][3]
    # the image itself sits in a block after the page's script, so charts draw before it is parsed
    assert rec["src"] is None
    images = _data(page, "trackhooks-images")
    assert len(images) == 13 and page.index('id="trackhooks-images"') > page.index("<script>")
    src = images[rec["ref"]]
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1])
    a = recs[0] if recs[0].name == "cnn-a" else recs[1]
    with open(a.media("samples")[3].path, "rb") as f:
        assert png == f.read()  # the stored file, byte for byte
    # no user string can leave the JSON script element or become markup
    assert media_data.XSS not in page
    assert page.count("<script") == 3 and "</script><img" not in page
    assert "img-src data:" in page and "connect-src" not in page  # offline: data: images only


def test_report_thins_long_sequences_and_caps_image_bytes(media_store):
    store, recs = media_store
    page, info = build_report(recs, store_path=store, media_steps={"image": 4, "histogram": 3})
    panels = {p["key"]: p for p in _data(page)["media"]}
    a_samples = next(s for s in panels["samples"]["series"] if s["n"] == 10)
    assert [r["step"] for r in a_samples["records"]] == [0, 3, 6, 9] and a_samples["shown"] == 4
    assert [r["step"] for r in panels["weights/fc1"]["series"][0]["records"]] == [0, 4, 9]
    assert set(info["media"]["thinned"]) == {"samples", "weights/fc1"}
    # a byte cap that fits three images: the per-key limit is halved until the kept images fit,
    # down to each run's last image
    one = max(os.path.getsize(m.path) for r in recs for m in r.media("samples"))
    page, info = build_report(recs, store_path=store, max_image_bytes=3 * one)
    assert info["media"]["images_embedded"] == 2 and info["media"]["images_left_out"] == 0
    series = {s["n"]: s for s in _data(page)["media"][0]["series"]}
    assert [r["step"] for r in series[10]["records"]] == [9] and [r["step"] for r in series[3]["records"]] == [10]
    # room for one: the rest are left out (the panel says so), never the file size exceeded
    page, info = build_report(recs, store_path=store, max_image_bytes=one)
    assert info["media"]["images_embedded"] == 1 and info["media"]["images_left_out"] == 1
    assert info["media"]["image_bytes"] <= one
    page, info = build_report(recs, store_path=store, max_image_bytes=0)
    assert info["media"]["images_embedded"] == 0 and "data:image" not in page


def test_cli_report_options(media_store, tmp_path):
    store, recs = media_store
    out = str(tmp_path / "r.html")
    p = subprocess.run([sys.executable, "-m", "trackhooks", "report", "--store", store, "-o", out, "--max-images", "2",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["media"]["images_embedded"] == 4  # 2 per run
    p = subprocess.run([sys.executable, "-m", "trackhooks", "report", "--store", store, "-o", out, "--max-images", "0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "at least 1" in p.stderr


def test_media_example_logs_every_kind(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    store = str(tmp_path / "store")
    p = subprocess.run([sys.executable, os.path.join(root, "examples", "media_digits.py")], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "TRACKHOOKS_URI": store})
    assert p.returncode == 0, p.stderr[-2000:]
    (rec,) = trackhooks.open_store(store).runs()
    kinds = {rec.media(k)[-1].kind for k in rec.media_keys()}
    assert kinds == set(mv.KINDS)
    page, info = build_report([rec])
    assert info["media"]["keys"] == 7 and info["media"]["images_embedded"] == 13
    roc = next(p for p in _data(page)["media"] if p["key"] == "roc_curve/8")["series"][0]["records"][0]
    assert roc["curve"] == "roc" and 0.9 < roc["auc"] <= 1.0


def test_jpeg_files_are_embedded_and_served_as_jpeg(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    path = str(tmp_path / "photo.jpg")
    Image.fromarray(media_data.image(3, 64)).save(path, format="JPEG")
    store = str(tmp_path / "store")
    with trackhooks.start_run("media", "jpeg", store=store) as run:
        run.log_image("photo", path, step=0)
    (rec,) = trackhooks.open_store(store).runs()
    page, info = build_report([rec])
    (src,) = _data(page, "trackhooks-images")
    with open(path, "rb") as f:
        assert src == "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()  # kept as it was
    c = TestClient(create_app(store))
    (r,) = c.get(f"/api/runs/{run.id}/media/photo").json()["records"]
    assert (r["w"], r["h"]) == (64, 64)
    got = c.get(r["src"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
