"""The HTML report in a real headless browser: Debian's chromium driven by playwright-core
(tests/browser/, installed by `npm ci` there; no browser download). Skips with the reason when
chromium, node or playwright-core is missing. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import math
import os
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
