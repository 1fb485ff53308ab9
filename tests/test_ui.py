"""`trackhooks ui`: API through Starlette's test client, and the real app in headless Chromium."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import trackhooks

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from trackhooks.ui.server import create_app, downsample  # noqa: E402

XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.path.join(ROOT, "test-artifacts")


def _fill(store):
    runs = []
    with trackhooks.start_run(store=store, experiment="exp", name="alpha", params={"lr": 0.1, "model": XSS},
                              tags={"framework": "keras"}) as r:
        for i in range(300):
            r.log_metrics({"loss": 1 / (i + 1), XSS: float(i)}, step=i, epoch=i // 100)
        src = os.path.join(store, "..", "notes.txt")
        with open(src, "w") as f:
            f.write("hello")
        r.log_artifact(src, name="docs/notes.txt")
        r.log_checkpoint(src, step=299, epoch=2, metrics={"loss": 0.01}, best=True, monitor="loss", mode="min")
        runs.append(r)
    with trackhooks.start_run(store=store, experiment="exp", name=XSS, params={"lr": 0.2, "model": XSS},
                              tags={"framework": "xgboost"}) as r:
        for i in range(200):
            r.log_metric("loss", 2 / (i + 1), step=i)
        for k in range(3):
            with trackhooks.start_run(store=store, experiment="exp", name=f"cand{k}", parent=r,
                                      params={"depth": k}) as c:
                c.log_metric("score", k / 10)
        runs.append(r)
    return runs


@pytest.fixture
def client(tmp_path):
    store = str(tmp_path / "store")
    runs = _fill(store)
    return TestClient(create_app(store)), runs


def test_runs_list_sort_filter_paginate(client):
    c, (a, b) = client
    d = c.get("/api/runs").json()
    assert d["total"] == 2 and d["experiments"] == ["exp"]
    assert [r["name"] for r in d["runs"]] == [XSS, "alpha"]  # newest first by default
    assert d["param_columns"] == ["lr"] and "loss" in d["metric_columns"]
    assert {r["framework"] for r in d["runs"]} == {"keras", "xgboost"}
    d = c.get("/api/runs?sort=metric:loss&order=asc").json()
    assert [r["name"] for r in d["runs"]] == ["alpha", XSS]
    assert d["runs"][0]["metrics"]["loss"] == pytest.approx(1 / 300)
    d = c.get("/api/runs?sort=param:lr&order=desc").json()
    assert [r["params"]["lr"] for r in d["runs"]] == [0.2, 0.1]
    assert c.get("/api/runs?q=alph").json()["total"] == 1
    assert c.get("/api/runs?status=failed").json()["total"] == 0
    assert c.get("/api/runs?all=1").json()["total"] == 5
    d = c.get("/api/runs?limit=1&offset=1").json()
    assert len(d["runs"]) == 1 and d["total"] == 2
    assert c.get("/api/runs?limit=x").status_code == 400


def test_run_detail(client):
    c, (a, b) = client
    d = c.get(f"/api/runs/{a.id[:8]}").json()
    assert d["name"] == "alpha" and d["params"]["model"] == XSS and d["tags"]["framework"] == "keras"
    assert d["metrics"]["loss"]["count"] == 300 and d["metrics"]["loss"]["min"] == pytest.approx(1 / 300)
    assert d["checkpoints"][0]["best"] and d["artifacts"][0]["name"] == "docs/notes.txt"
    assert d["system"]["python"]
    kids = c.get(f"/api/runs/{b.id}").json()["children"]
    assert [k["name"] for k in kids] == ["cand0", "cand1", "cand2"]
    assert [k["metrics"]["score"] for k in kids] == [0.0, 0.1, 0.2]
    assert c.get("/api/runs/ffffffffffff").status_code == 404


def test_series_downsampled_and_incremental(client):
    c, (a, b) = client
    s = c.get(f"/api/runs/{a.id}/metrics/loss?max_points=50").json()
    assert s["n"] == 300 and s["downsampled"] and s["shown"] <= 52
    assert s["steps"][0] == 0 and s["steps"][-1] == 299
    full = c.get(f"/api/runs/{a.id}/metrics/loss").json()
    assert not full["downsampled"] and full["steps"] == list(range(300)) and full["epochs"][150] == 1
    tail = c.get(f"/api/runs/{a.id}/metrics/loss?since=298").json()
    assert tail["steps"] == [298, 299] and tail["from"] == 298
    key = urllib.request.quote(XSS, safe="")
    assert c.get(f"/api/runs/{a.id}/metrics/{key}").json()["n"] == 300
    assert c.get(f"/api/runs/{a.id}/metrics/nope").status_code == 404


def test_downsample_keeps_extremes():
    values = [0.0] * 10000
    values[1234] = 99.0
    values[8765] = -5.0
    values[500] = float("nan")
    idx = downsample(len(values), values, 100)
    assert 1234 in idx and 8765 in idx and idx[0] == 0 and idx[-1] == 9999 and len(idx) <= 102


def test_live_counts(client):
    c, (a, b) = client
    d = c.get(f"/api/live?ids={a.id},{b.id},unknown").json()
    assert d[a.id]["status"] == "finished" and d[a.id]["counts"]["loss"] == 300 and "unknown" not in d


def test_artifact_download_cannot_escape(client):
    c, (a, b) = client
    r = c.get(f"/api/runs/{a.id}/artifacts/docs/notes.txt")
    assert r.status_code == 200 and r.text == "hello" and r.headers["x-content-type-options"] == "nosniff"
    for bad in ("../../trackhooks.db", "..%2F..%2Ftrackhooks.db", "/etc/passwd", "docs/../notes.txt"):
        assert c.get(f"/api/runs/{a.id}/artifacts/{bad}").status_code == 404


def test_read_only_and_static(client):
    c, (a, b) = client
    for method in ("post", "put", "delete"):
        assert getattr(c, method)("/api/runs").status_code == 405
    page = c.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "uPlot" in c.get("/static/vendor/uPlot.iife.min.js").text
    assert "textContent" in c.get("/static/app.js").text


def test_import_trackhooks_does_not_load_the_ui():
    code = "import sys, trackhooks; trackhooks.start_run; print('starlette' in sys.modules, 'uvicorn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


LIVE = """
import sys, time, trackhooks
run = trackhooks.start_run(experiment="exp", name="live-run", system_metrics=0.2)
print(run.id, flush=True)
print("<script>window.__xss=4</script>", flush=True)
for i in range(400):
    run.log_metric("live_metric", float(i), step=i)
    print(f"console line {i}", flush=True)
    print(f"{i % 100}%\\r", end="", flush=True)  # a progress bar, overwritten by the next line
    run.flush()
    time.sleep(0.1)
run.finish()
"""


def _browser():
    """(chromium, node) for the browser tests, or skip saying what is missing."""
    chromium = os.environ.get("TRACKHOOKS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    node = shutil.which("node")
    if chromium is None:
        pytest.skip("chromium not found (apt-get install chromium, or set TRACKHOOKS_CHROMIUM)")
    if node is None or not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        pytest.skip("node or playwright-core missing: run `npm ci` in tests/browser")
    return chromium, node


def test_ui_in_headless_chromium(tmp_path):
    chromium, node = _browser()
    store = str(tmp_path / "store")
    _fill(store)
    env = {**os.environ, "TRACKHOOKS_URI": store}
    live = subprocess.Popen([sys.executable, "-c", LIVE], env=env, stdout=subprocess.PIPE, text=True)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "trackhooks", "ui", "--store", store, "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        live_id = live.stdout.readline().strip()
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/api/runs", server)
        os.makedirs(ARTIFACTS, exist_ok=True)
        r = subprocess.run([node, "check_ui.mjs", base, live_id, ARTIFACTS, chromium], cwd=BROWSER_DIR,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        live.terminate()
        server.wait(10)
        live.wait(10)
    assert out["console_errors"] == [] and out["page_errors"] == [] and out["dialogs"] == []
    assert out["external_requests"] == []
    assert out["runs_listed"] == 3 and XSS in out["run_names"] and "live-run" in out["run_names"]
    assert out["sorted_names"] == sorted(out["run_names"])  # clicking "name" sorts ascending
    assert out["filtered"] == ["alpha"]
    assert out["compare_series"]["loss"] == 2 and out["compare_series"][XSS] == 1
    assert out["diff_rows"] >= 1
    assert out["live_after"] > out["live_before"] > 0 and out["no_reload"]
    assert out["live_status"] == "running"
    assert out["xss"] is None
    # the console tails live; the progress bar is one unfinished line; system metrics have their own section
    assert out["console_after"] > out["console_before"] > 0 and out["console_first"] == "<script>window.__xss=4</script>"
    assert "%" in out["console_partial"] and "\r" not in out["console_partial"]
    assert "system/cpu_percent" in out["system_keys"] and not any(k.startswith("system/") for k in out["metric_keys"])
    assert out["system_axis"] == "wall"
    for section in ("Params", "Metrics", "System", "Console", "Media", "Checkpoints", "Artifacts", "Datasets"):
        assert any(h.startswith(section) for h in out["run_sections"])
    assert os.path.getsize(os.path.join(ARTIFACTS, "ui-compare.png")) > 10_000


def test_console_tail_by_offset(tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    run = trackhooks.start_run(store=store, capture_output=True)
    c = TestClient(create_app(store))
    try:
        print("one\ntwo")
        print("50%", end="\r")
        run.flush()
        first = c.get(f"/api/runs/{run.id}/console").json()
        assert (first["text"], first["partial"], first["offset"], first["skipped"]) == ("one\ntwo\n", "50%", 0, 0)
        assert first["status"] == "running"
        print("100%")
        print("three")
        run.flush()
        more = c.get(f"/api/runs/{run.id}/console?offset={first['next']}").json()
        assert (more["text"], more["partial"]) == ("100%\nthree\n", "")  # only what is new
    finally:
        run.finish()
    done = c.get(f"/api/runs/{run.id}/console").json()
    assert done["text"] == "one\ntwo\n100%\nthree\n" and done["status"] == "finished"
    monkeypatch.setattr("trackhooks.ui.server.CONSOLE_TAIL_BYTES", 10)
    tail = c.get(f"/api/runs/{run.id}/console").json()  # a long log opens at its end
    assert tail["text"] == "three\n" and tail["skipped"] == len("one\ntwo\n100%\n")
    assert c.get("/api/runs/nope/console").status_code == 404


# ---- media ----------------------------------------------------------------------------------

from tests import media_data  # noqa: E402


@pytest.fixture
def media_client(tmp_path):
    store = str(tmp_path / "store")
    a, b = media_data.fill(store)
    return TestClient(create_app(store)), a, b


def test_media_keys_and_records(media_client):
    c, a, b = media_client
    d = c.get(f"/api/runs/{a.id[:8]}/media").json()
    keys = {k["key"]: k for k in d["keys"]}
    assert d["run"] == a.id
    assert {k: v["kind"] for k, v in keys.items()} == {
        "samples": "image", "weights/fc1": "histogram", "val_confusion": "confusion_matrix", "roc": "curve",
        "lr_schedule": "curve", "predictions": "table", media_data.XSS: "table", "pr_curve/cat": "curve",
        "pr_curve/dog": "curve"}
    assert keys["samples"]["count"] == 10 and keys["samples"]["last_step"] == 9
    s = c.get(f"/api/runs/{a.id}/media/samples").json()
    assert s["kind"] == "image" and s["n"] == s["shown"] == 10 and [r["step"] for r in s["records"]] == list(range(10))
    assert s["records"][3]["caption"] == "prediction 3 " + media_data.XSS and s["records"][3]["w"] == 32
    # thinned: evenly spaced, first and last kept
    s = c.get(f"/api/runs/{a.id}/media/samples?max_records=4").json()
    assert [r["step"] for r in s["records"]] == [0, 3, 6, 9] and s["n"] == 10 and s["shown"] == 4
    h = c.get(f"/api/runs/{a.id}/media/" + urllib.request.quote("weights/fc1", safe="")).json()
    r0 = h["records"][0]
    assert len(r0["edges"]) == 33 and sum(r0["counts"]) == r0["count"] == 1997 and r0["nonfinite"]["nan"] == 3
    roc = c.get(f"/api/runs/{a.id}/media/roc").json()["records"][0]
    assert roc["curve"] == "roc" and roc["auc"] == pytest.approx(media_data.roc_auc())
    lr = c.get(f"/api/runs/{a.id}/media/lr_schedule").json()["records"][0]
    assert lr["curve"] is None and lr["auc"] is None
    cm = c.get(f"/api/runs/{a.id}/media/val_confusion").json()["records"][-1]
    assert cm["labels"] == ["cat", "dog", media_data.XSS] and cm["matrix"][2] == [5, 0, 5]
    x = c.get(f"/api/runs/{a.id}/media/" + urllib.request.quote(media_data.XSS, safe="")).json()
    assert x["records"][0]["columns"] == [media_data.XSS, "n"] and x["records"][0]["rows"] == [[media_data.XSS, 1]]
    assert c.get(f"/api/runs/{a.id}/media/nope").status_code == 404
    assert c.get(f"/api/runs/{a.id}/media/samples?max_records=x").status_code == 400
    assert c.get("/api/runs/ffffffffffff/media").status_code == 404


def test_media_files_by_content_address(media_client):
    c, a, b = media_client
    recs = c.get(f"/api/runs/{a.id}/media/samples").json()["records"]
    srcs = [r["src"] for r in recs]
    assert len(set(srcs)) == 10 and all(s.startswith(f"/api/runs/{a.id}/media-files/") for s in srcs)
    r = c.get(srcs[0])
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"] and "immutable" in r.headers["cache-control"]
    name = srcs[0].rsplit("/", 1)[1]
    # a file of one run is not served under another run, and no path leaves the store
    assert c.get(f"/api/runs/{b.id}/media-files/{name}").status_code == 404
    for bad in ("..%2F..%2Ftrackhooks.db", "../../trackhooks.db", "%2Fetc%2Fpasswd", "x" * 64):
        assert c.get(f"/api/runs/{a.id}/media-files/{bad}").status_code == 404
    for method in ("post", "put", "delete"):
        assert getattr(c, method)(f"/api/runs/{a.id}/media").status_code == 405
        assert getattr(c, method)(srcs[0]).status_code == 405
    js = c.get("/shared/media.js")
    assert js.status_code == 200 and "TrackhooksMedia" in js.text and js.headers["content-type"].startswith("text/javascript")
    assert c.get("/shared/media.css").status_code == 200
    assert c.get("/shared/report.py").status_code == 404 and c.get("/shared/..%2Freport.py").status_code == 404
    page = c.get("/").text
    assert '<script src="/shared/media.js"></script>' in page


LIVE_MEDIA = """
import sys, time
sys.path.insert(0, sys.argv[1])
import trackhooks
from tests.media_data import image
run = trackhooks.start_run(experiment="media", name="live")
print(run.id, flush=True)
for i in range(600):
    run.log_image("live_samples", image(i), step=i)
    run.flush()
    time.sleep(0.1)
run.finish()
"""


def test_ui_media_in_headless_chromium(tmp_path):
    """`trackhooks ui` on the compare view of two runs and a third that another process is writing:
    the same panels as the report, side by side at the same step, and the live run's images
    appear as they are logged."""
    from tests.test_report_browser import _check_media, assert_media_page

    chromium, node = _browser()
    store = str(tmp_path / "store")
    a, b = media_data.fill(store)
    env = {**os.environ, "TRACKHOOKS_URI": store}
    live = subprocess.Popen([sys.executable, "-c", LIVE_MEDIA, ROOT], env=env, stdout=subprocess.PIPE, text=True)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "trackhooks", "ui", "--store", store, "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        live_id = live.stdout.readline().strip()
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/api/runs", server)
        os.makedirs(ARTIFACTS, exist_ok=True)
        res = _check_media(f"{base}/#/compare/{a.id},{b.id},{live_id}", os.path.join(ARTIFACTS, "ui-media.png"),
                           chromium, node, "live_samples")
    finally:
        server.terminate()
        live.terminate()
        server.wait(10)
        live.wait(10)
    assert_media_page(res, {"live_samples": "image"})
    assert res["live_after"] > res["live_before"] + 1 and res["live_followed"]


def test_live_media_counts(media_client):
    c, a, b = media_client
    d = c.get(f"/api/live?ids={a.id},{b.id}").json()
    assert d[a.id]["media"]["samples"] == 10 and d[a.id]["media"]["weights/fc1"] == 10
    assert d[b.id]["media"] == {"samples": 3, "val_confusion": 1}
    assert d[a.id]["counts"]["loss"] == 10  # metric counts as before


def test_media_file_logged_after_the_first_request_is_found(tmp_path):
    store = str(tmp_path / "store")
    with trackhooks.start_run("media", "grow", store=store) as run:
        run.log_image("img", media_data.image(0), step=0)
    c = TestClient(create_app(store))
    first = c.get(f"/api/runs/{run.id}/media/img").json()["records"]
    assert c.get(first[0]["src"]).status_code == 200
    with trackhooks.start_run(resume=run.id, store=store) as again:
        again.log_image("img", media_data.image(1), step=1)
    recs = c.get(f"/api/runs/{run.id}/media/img").json()["records"]
    assert [r["step"] for r in recs] == [0, 1] and recs[1]["src"] != recs[0]["src"]
    r = c.get(recs[1]["src"])
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


WHERE_RUNS = [  # name, lr, optimizer, last loss
    ("sgd-fast", 0.1, "sgd", 0.9),
    ("sgd-slow", 0.001, "sgd", 0.4),
    ("adam-slow", 0.0005, "adam", 0.2),
    ("adam-mid", 0.01, "adam", 0.35),
    ("adam-fast", 0.3, "adam", 0.05),
]


def test_ui_where_box_in_headless_chromium(tmp_path):
    """The where box in a real browser: exactly the matching runs (also when an unfiltered poll
    answers after the filtered one), a malformed expression shows the QueryError with its caret
    and leaves the table alone, and clearing the box brings every run back."""
    chromium, node = _browser()
    store = str(tmp_path / "store")
    for name, lr, opt, loss in WHERE_RUNS:
        with trackhooks.start_run(store=store, experiment="sweep", name=name, params={"lr": lr, "optimizer": opt}) as r:
            r.log_metric("loss", 1.0)
            r.log_metric("loss", loss)
    where = "params.lr < 0.05 and (params.optimizer = 'adam' or metrics.loss < 0.5)"
    match = ["adam-mid", "adam-slow", "sgd-slow"]
    assert sorted(r.name for r in trackhooks.open_store(store).runs(where=where)) == match
    bad = "params.lr < 0.05 and metrics.loss <"
    spec = {"where": where, "bad": bad, "all": [n for n, *_ in WHERE_RUNS], "match": match}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "trackhooks", "ui", "--store", store, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/api/runs", server)
        os.makedirs(ARTIFACTS, exist_ok=True)
        r = subprocess.run([node, "check_ui_where.mjs", base, ARTIFACTS, chromium, json.dumps(spec)],
                           cwd=BROWSER_DIR, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(10)
    assert out["timeouts"] == [], json.dumps(out)
    assert out["console_errors"] == [] and out["page_errors"] == [] and out["dialogs"] == [], out
    assert out["initial"] == sorted(spec["all"])
    assert out["filtered"] == match and out["info_filtered"].startswith("3 runs")
    # the unfiltered answer that came late never replaced the filtered table
    assert out["renders_after_late_answer"] and all(n == match for n in out["renders_after_late_answer"]), out
    lines = out["error_text"].split("\n")
    assert lines[0] == f"missing a value (found the end of the expression) at position {len(bad)}", lines
    assert lines[1] == "  " + bad and lines[2] == " " * (2 + len(bad)) + "^", lines
    assert lines[3].startswith("expected a string in single quotes, a number")
    assert "mono" in out["error_font"].lower()  # the caret lines up under the expression
    assert out["after_error"] == match and out["error_still_shown"]  # the table as it was
    assert out["renders_after_error"] == [] and out["header_cells"] > 8 and out["info_after_error"].startswith("3 runs")
    assert out["cleared"] == sorted(spec["all"]) and not out["error_shown_after_clear"] and out["box_after_clear"] == ""
    assert os.path.getsize(os.path.join(ARTIFACTS, "ui-where-error.png")) > 10_000
