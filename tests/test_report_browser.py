"""The HTML report in a real headless browser: Debian's chromium driven by playwright-core
(tests/browser/, installed by `npm ci` there; no browser download). Skips with the reason when
chromium, node or playwright-core is missing. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import trackhooks

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
ARTIFACTS = os.path.join(os.path.dirname(HERE), "test-artifacts")
XSS_NAME = 'big <img src=x onerror="window.__xss=1">'
XSS_PARAM = "</script><script>window.__xss=2</script>"
XSS_KEY = "<script>window.__xss=3</script>"


def _chromium() -> str | None:
    for cand in (os.environ.get("TRACKHOOKS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _requirements() -> tuple[str, str]:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not found (apt-get install chromium, or set TRACKHOOKS_CHROMIUM)")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the browser test drives chromium through playwright-core")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        pytest.skip("playwright-core not installed: run `npm ci` in tests/browser")
    return chromium, node


def _make_store(path: str) -> None:
    for i, lr in enumerate([0.1, 0.03]):
        with trackhooks.start_run("digits", f"lightning-{i}", params={"lr": lr, "hidden": 64},
                                  tags={"framework": "lightning"}, store=path) as run:
            for step in range(300):
                run.log_metrics({"train_loss": 2.3 * math.exp(-step / (60 + 40 * i)) + 0.05 * math.sin(step)},
                                step=step, epoch=step // 60)
            for e in range(5):
                run.log_metrics({"val_loss": 1.5 * math.exp(-e / (1.5 + i)), "val_acc": 0.6 + 0.07 * e - 0.03 * i},
                                step=e * 60 + 59, epoch=e)
            run.log_metric("test_accuracy", 0.9 + 0.02 * i)
            ckpt = os.path.join(path, f"c{i}.ckpt")
            with open(ckpt, "wb") as f:
                f.write(b"weights")
            run.log_checkpoint(ckpt, step=299, epoch=4, metrics={"val_loss": 1.5 * math.exp(-4 / (1.5 + i))},
                               best=True, monitor="val_loss", mode="min")
    with trackhooks.start_run("digits", XSS_NAME, params={"note": XSS_PARAM, "lr": 0.1},
                              tags={"framework": "keras"}, store=path) as run:
        run.log_metric(XSS_KEY, 1.0, step=0)
        run.log_metric(XSS_KEY, 1.5, step=1)
        run.log_metric("test_accuracy", 0.91)
        # a 100k-point series: the page must downsample it and say so
        for i in range(100_000):
            run.log_metric("train_loss", 1.5 + math.sin(i / 4000) * 0.5 + (2.0 if i == 55_555 else 0.0),
                           step=i * 3 // 1000, epoch=i // 20_000)


def test_report_in_headless_chromium(tmp_path):
    chromium, node = _requirements()
    store = str(tmp_path / "store")
    _make_store(store)
    report = str(tmp_path / "report.html")
    p = subprocess.run([sys.executable, "-m", "trackhooks", "report", "--store", store, "-o", report],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "report.png")
    r = subprocess.run([node, "check_report.mjs", report, shot, chromium], cwd=BROWSER_DIR, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, f"browser check failed:\n{r.stdout}\n{r.stderr}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["console_errors"] == [] and res["page_errors"] == [], res
    assert res["requests"] == []  # offline: the page asks for nothing
    assert res["dialogs"] == [] and res["xss"] is None and res["xss_after"] is None
    assert res["injected_elements"] == 0 and res["body_text_has_payload"]  # shown as text, inert
    charts = res["charts"]
    assert len(charts) == res["expected_charts"] == 4  # train_loss, val_acc, val_loss, the XSS key
    assert all(c["points"] > 0 and c["width"] > 0 for c in charts), charts
    by_key = {c["key"]: c for c in charts}
    assert by_key[XSS_KEY]["points"] == 2
    assert by_key["train_loss"]["series"] == 3 and by_key["train_loss"]["points"] <= 600 + 4002
    assert any("downsampled for display, 100,000 → " in n for n in res["notes"]), res["notes"]
    assert res["tooltip_rows"] >= 1 and res["zoom"]  # hover read-out and drag-to-zoom work
    assert len(res["epoch_points"]) == 4 and all(n > 0 for n in res["epoch_points"][:3])
    assert os.path.getsize(shot) > 10_000
    print(f"report: first render {res['render_ms']:.0f} ms, hover {res['hover_ms_per_move']:.1f} ms per move, "
          f"page load {res['load_ms']} ms")


def test_report_system_section_in_headless_chromium(tmp_path):
    chromium, node = _requirements()
    store = str(tmp_path / "store")
    with trackhooks.start_run("digits", "sampled", store=store, system_metrics=0.2) as run:
        for step in range(50):
            run.log_metric("train_loss", 1 / (step + 1), step=step)
    report = str(tmp_path / "report.html")
    p = subprocess.run([sys.executable, "-m", "trackhooks", "report", "--store", store, "-o", report],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = subprocess.run([node, "check_report_system.mjs", report, chromium], cwd=BROWSER_DIR, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["console_errors"] == [] and out["page_errors"] == []
    assert "system/memory_rss_mb" in out["system_keys"] and len(out["system_keys"]) == out["expected"]
    assert out["metric_keys"] == ["train_loss"]  # system metrics are not among the training metrics
    assert out["axis"] == "time" and all(n >= 2 for n in out["points_wall"])
    assert out["tip"] and out["tip"].count(":") == 2  # the read-out is a clock time (YYYY-MM-DD HH:MM:SS)
    assert out["points_sample"] == out["points_wall"]


def _check_media(url: str, shot: str, chromium: str, node: str, live_key: str = "") -> dict:
    r = subprocess.run([node, "check_media.mjs", url, shot, chromium, live_key], cwd=BROWSER_DIR,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"browser check failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_media_page(res: dict, extra_kinds: dict | None = None) -> None:
    """What the report and the UI must both show for tests/media_data.fill()."""
    from tests.media_data import XSS, roc_auc

    assert res["console_errors"] == [] and res["page_errors"] == [] and res["dialogs"] == [], res
    assert res["external_requests"] == []
    assert res["xss"] is None and res["xss_after"] is None and res["injected"] == 0 and res["payload_as_text"]
    kinds = {p["key"]: p["kind"] for p in res["panels"]}
    assert kinds == {"samples": "image", "val_confusion": "confusion_matrix", "roc": "curve", "lr_schedule": "curve",
                     "weights/fc1": "histogram", "predictions": "table", XSS: "table", "pr_curve/*": "curve",
                     **(extra_kinds or {})}
    from trackhooks.mediaview import KIND_ORDER

    ranks = [KIND_ORDER[p["kind"]] for p in res["panels"]]
    assert ranks == sorted(ranks), res["panels"]  # pictures first, then plots, then tables
    panels = {p["key"]: p for p in res["panels"]}
    # the slider runs over the union of both runs' steps (a: 0..9, b: 0, 5, 10), starting at the last
    assert panels["samples"]["steps"] == 11 and panels["samples"]["cells"] == 2
    assert res["image_last"]["step"] == "9"  # run a's latest record at or before step 10
    assert res["image_first"]["step"] == "0" and res["image_first"]["panel_step"] == "0"
    assert res["image_next"]["step"] == "1"
    assert len({res["image_last"]["src"], res["image_first"]["src"], res["image_next"]["src"]}) == 3
    assert res["caption"].startswith("prediction 1 " + XSS)
    by_slider = res["cell_steps_by_slider"]
    assert by_slider[0] == ["0", "0"] and by_slider[5] == ["5", "5"] and by_slider[7] == ["7", "5"]
    assert by_slider[10] == ["9", "10"]
    # confusion matrix at its last step (2): cat 10/0/0, dog 0/10/0, third label 5/0/5
    assert res["cm_counts"] == [["10", "0", "0"], ["0", "10", "0"], ["5", "0", "5"]]
    assert res["cm_normalized"] == [["1.00", "0.00", "0.00"], ["0.00", "1.00", "0.00"], ["0.50", "0.00", "0.50"]]
    assert res["cm_mode"] == "normalized" and res["cm_back"] == res["cm_counts"]
    assert res["table_before"] == ["0.5", "2", "-1", "10"] * 2
    assert res["table_asc"] == ["-1", "-1", "0.5", "0.5", "2", "2", "10", "10"]
    assert res["table_desc"] == res["table_asc"][::-1]
    assert res["table_labels"] == sorted(res["table_labels"], key=lambda s: s.lower())  # localeCompare order
    assert res["hist_bars"] == {"mode": "bars", "bins": "32"}
    assert res["hist_ridge"] == {"mode": "ridge", "rows": "10"}
    assert res["hist_heat"] == {"mode": "heat", "rows": "10"}
    assert "not binned: 3 nan" in res["hist_caption"]
    # "pr_curve/cat" and "pr_curve/dog": one panel, both lines, AUC each (1.0 and 0.875), in name order
    assert res["family"] == [{"legend": ["cat · AUC 1.000", "dog · AUC 0.875"], "lines": "2",
                              "caption": "2 curves · mean PR AUC 0.9375 (trapezoid, unweighted) · step 0"}]
    curves = {c["key"]: c for c in res["curves"]}
    assert float(curves["roc"]["auc"]) == pytest.approx(roc_auc(), abs=1e-6)
    assert "ROC AUC 0.8300 (trapezoid)" in curves["roc"]["caption"]
    assert curves["lr_schedule"]["auc"] == "" and curves["lr_schedule"]["points"] == 10  # not a ROC/PR curve


def test_report_media_in_headless_chromium(tmp_path):
    chromium, node = _requirements()
    from tests import media_data

    store = str(tmp_path / "store")
    media_data.fill(store)
    recs = trackhooks.open_store(store).runs()
    from trackhooks.report import write_report

    report = str(tmp_path / "report.html")
    info = write_report(recs, report, store_path=store)
    assert info["media"]["keys"] == 9 and info["media"]["images_embedded"] == 13
    os.makedirs(ARTIFACTS, exist_ok=True)
    res = _check_media(pathlib.Path(report).as_uri(), os.path.join(ARTIFACTS, "report-media.png"), chromium, node)
    assert_media_page(res)
    assert res["hidden_cells"] == [True, True] and res["shown_again"]  # cnn-b's samples and confusion matrix
    assert res["filtered_panels"] == ["roc"]
