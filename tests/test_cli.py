"""The command line, run as a user runs it (subprocess), on stores written by the real API."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import trackhooks
from trackhooks import summaries as sm
from trackhooks.report import build_report, downsample_indices, epoch_positions, json_for_script, write_report

PY = sys.executable
XSS_NAME = 'evil <img src=x onerror="window.__xss=1">'
XSS_PARAM = "</script><script>window.__xss=2</script>"
XSS_KEY = "<script>window.__xss=3</script>"


def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    e.pop("TRACKHOOKS_DEBUG", None)
    p = subprocess.run([PY, "-m", "trackhooks", *args], capture_output=True, text=True, env=e, timeout=120)
    if check:
        assert p.returncode == 0, f"trackhooks {' '.join(args)} failed ({p.returncode}): {p.stderr}"
    return p


def cli_json(*args: str) -> object:
    return json.loads(cli(*args, "--json").stdout)


def assert_one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("trackhooks: error:"), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with two 'lightning' runs on different data, a 'keras' and an 'xgboost' run sharing
    val_loss, a parent with children, a killed run, checkpoints, an artifact and injection strings."""
    root = tmp_path_factory.mktemp("cli")
    store = str(root / "store")
    ck = root / "ckpt"
    ck.mkdir()
    ids: dict[str, str] = {}
    for i, lr in enumerate([0.1, 0.01]):
        with trackhooks.start_run("mnist", f"light{i}", params={"lr": lr, "optimizer": {"name": "adam"}, "seed": 7},
                                  tags={"framework": "lightning"}, store=store) as run:
            run.log_dataset([1.0, 2.0, float(i)], name="digits", context="train")
            run.log_dataset([9.0, 9.0], name="holdout", context="test")
            for step in range(50):
                run.log_metrics({"train_loss": 1.0 / (step + 1 + i)}, step=step, epoch=step // 10)
            for e in range(5):
                run.log_metrics({"val_loss": 1.0 / (e + 1) + i * 0.1, "val_acc": 0.5 + 0.1 * e - 0.2 * i},
                                step=e * 10 + 9, epoch=e)
                p = ck / f"r{i}e{e}.ckpt"
                p.write_bytes(b"x" * (e + 1))
                run.log_checkpoint(p, step=e * 10 + 9, epoch=e, metrics={"val_loss": 1.0 / (e + 1) + i * 0.1},
                                   best=True, monitor="val_loss", mode="min")
                if e >= 2:
                    run.update_checkpoint(ck / f"r{i}e{e - 2}.ckpt", deleted=True)
            art = root / f"notes{i}.txt"
            art.write_text("hello")
            run.log_artifact(art)
        ids[f"light{i}"] = run.id
    with trackhooks.start_run("cross", "keras-run", params={"units": 32}, tags={"framework": "keras"},
                              store=store) as run:
        run.log_dataset([1.0, 2.0, 0.0], name="digits", context="train")
        for e in range(3):
            run.log_metrics({"val_loss": 0.5 - 0.1 * e, "val_accuracy": 0.8 + 0.05 * e}, epoch=e)
        run.log_metric("weird", float("nan"), step=0)
        run.log_metric("weird", float("inf"), step=1)
        run.log_metric("weird", 2.5, step=2)
    ids["keras"] = run.id
    with trackhooks.start_run("cross", XSS_NAME, params={"note": XSS_PARAM, "max_depth": 3},
                              tags={"framework": "xgboost"}, store=store) as run:
        run.log_dataset([1.0, 2.0, 0.0], name="digits", context="train")
        for s in range(4):
            run.log_metric("val_loss", 0.6 - 0.05 * s, step=s)
        run.log_metric(XSS_KEY, 1.0, step=0)
        run.log_metric(XSS_KEY, 2.0, step=1)
        run.log_metric("test_" + XSS_KEY, 0.5)  # once: a single value, not a chart
        for j in range(2):
            with trackhooks.start_run("cross", f"cand{j}", params={"max_depth": 3 + j}, parent=run,
                                      store=store) as child:
                child.log_metric("mean_test_score", 0.9 + 0.01 * j)
            ids[f"cand{j}"] = child.id
    ids["xgb"] = run.id
    script = textwrap.dedent(f"""
        import os, trackhooks
        run = trackhooks.start_run("mnist", "doomed", store={store!r})
        run.log_metric("train_loss", 3.0, step=0)
        run.flush()
        os.kill(os.getpid(), 9)
    """)
    subprocess.run([PY, "-c", script], timeout=60)
    killed = [r for r in trackhooks.open_store(store).runs() if r.name == "doomed"]
    ids["doomed"] = killed[0].id
    return {"store": store, "ids": ids, "root": root}


# ---- runs ------------------------------------------------------------------------------------


def test_runs_table_shows_every_run_with_status_framework_and_metrics(world):
    out = cli("runs", "--store", world["store"]).stdout
    for name in ("light0", "light1", "keras-run", "cand0", "cand1", "doomed"):
        assert name in out
    line = next(l for l in out.splitlines() if "doomed" in l)
    assert "killed" in line  # a SIGKILLed process reads as killed, not running
    line = next(l for l in out.splitlines() if "light0" in l)
    assert world["ids"]["light0"][:8] in line and "lightning" in line and "val_loss=" in line
    assert "└ cand0" in out  # children under their parent
    assert "\x1b" not in out  # piped output has no colour codes


def test_runs_json_and_filters(world):
    s = world["store"]
    runs = cli_json("runs", "--store", s)
    assert {r["id"] for r in runs} == set(world["ids"].values())
    for r in runs:
        assert set(r) >= {"id", "name", "experiment", "status", "parent_id", "start_time", "end_time", "duration_s",
                          "framework", "params", "tags", "metrics"}
    by_name = {r["name"]: r for r in runs}
    assert by_name["doomed"]["status"] == "killed"
    assert by_name["light1"]["metrics"]["val_loss"] == pytest.approx(0.3)
    assert by_name["keras-run"]["metrics"]["weird"] == 2.5
    assert by_name["cand1"]["parent_id"] == world["ids"]["xgb"]
    assert {r["name"] for r in cli_json("runs", "--store", s, "--experiment", "mnist")} == {"light0", "light1", "doomed"}
    assert [r["name"] for r in cli_json("runs", "--store", s, "--status", "killed")] == ["doomed"]
    # --dataset filters by digest prefix (issue 11), through store.runs_using
    rec = trackhooks.open_store(s).run(world["ids"]["light0"])
    digest = next(d.digest for d in rec.datasets() if d.context == "train")
    found = {r["name"] for r in cli_json("runs", "--store", s, "--dataset", digest[:10])}
    assert found == {r.name for r in trackhooks.open_store(s).runs_using(digest[:10])}
    assert found >= {"light0", "keras-run", XSS_NAME} and "light1" not in found


def test_runs_uses_trackhooks_uri_and_global_options_before_the_command(world):
    p = cli("runs", env={"TRACKHOOKS_URI": world["store"]})
    assert "light0" in p.stdout
    assert cli_json("--store", world["store"], "runs", "--status", "killed")[0]["name"] == "doomed"


def test_runs_with_no_match_is_not_an_error(world):
    p = cli("runs", "--store", world["store"], "--experiment", "nope")
    assert "no runs match" in p.stderr and p.stdout == ""
    assert cli_json("runs", "--store", world["store"], "--experiment", "nope") == []


# ---- show ------------------------------------------------------------------------------------


def test_show_json_has_everything(world):
    rid = world["ids"]["light0"]
    d = cli_json("show", rid[:10], "--store", world["store"])
    assert d["id"] == rid and d["params"] == {"lr": 0.1, "optimizer.name": "adam", "seed": 7}
    assert d["tags"] == {"framework": "lightning"}
    assert d["system"]["python"].count(".") == 2
    m = d["metrics"]["train_loss"]
    assert (m["count"], m["last"], m["min"], m["max"]) == (50, pytest.approx(1 / 50), pytest.approx(1 / 50), 1.0)
    assert (m["min_step"], m["max_step"], m["min_epoch"], m["max_epoch"]) == (0, 49, 0, 4)
    ck = d["checkpoints"]
    assert len(ck) == 5 and [c["best"] for c in ck] == [False] * 4 + [True]
    assert [c["deleted"] for c in ck] == [True, True, True, False, False]
    assert ck[-1]["metrics"] == {"val_loss": pytest.approx(0.2)} and ck[-1]["size"] == 5
    assert [a["name"] for a in d["artifacts"]] == ["notes0.txt"] and os.path.exists(d["artifacts"][0]["path"])
    assert {(x["name"], x["context"]) for x in d["datasets"]} == {("digits", "train"), ("holdout", "test")}
    assert all(len(x["digest"]) == 64 for x in d["datasets"])
    parent = cli_json("show", world["ids"]["xgb"], "--store", world["store"])
    assert [c["name"] for c in parent["children"]] == ["cand0", "cand1"]
    weird = cli_json("show", world["ids"]["keras"], "--store", world["store"])["metrics"]["weird"]
    assert weird["count"] == 3 and weird["min"] == 2.5 and weird["max"] == "Infinity"


def test_show_table(world):
    out = cli("show", world["ids"]["light1"], "--store", world["store"]).stdout
    for word in ("params", "optimizer.name", "tags", "datasets", "digits", "holdout", "metrics", "train_loss",
                 "checkpoints", "★ best", "deleted", "artifacts", "notes1.txt", "system", "python"):
        assert word in out, word
    rec = trackhooks.open_store(world["store"]).run(world["ids"]["light1"])
    assert rec.datasets()[0].digest[:16] in out
    line = next(l for l in out.splitlines() if l.startswith("train_loss"))
    assert line.split()[1:5] == ["50", "0.01961", "0.01961", "0.5"]  # count last min max
    out = cli("show", world["ids"]["xgb"], "--store", world["store"]).stdout
    assert "children" in out and "cand1" in out and XSS_NAME in out


# ---- compare ---------------------------------------------------------------------------------


def test_compare_json_params_metrics_best_and_data_warning(world):
    a, b = world["ids"]["light0"], world["ids"]["light1"]
    p = cli("compare", a, b[:9], "--store", world["store"], "--json")
    d = json.loads(p.stdout)
    assert [r["id"] for r in d["runs"]] == [a, b]
    assert d["params"] == {"lr": {a: 0.1, b: 0.01}}  # only params that differ
    vl, va = d["metrics"]["val_loss"], d["metrics"]["val_acc"]
    assert vl["direction"] == "min" and vl["best"] == a  # 0.2 < 0.3
    assert va["direction"] == "max" and va["best"] == a  # 0.9 > 0.7
    assert vl["runs"][b] == {"last": pytest.approx(0.3), "min": pytest.approx(0.3), "max": pytest.approx(1.1),
                             "count": 5}
    assert any("different training data" in w for w in d["warnings"])
    assert "different training data" in p.stderr  # also said where a person sees it


def test_compare_across_frameworks_on_a_shared_metric(world):
    k, x = world["ids"]["keras"], world["ids"]["xgb"]
    p = cli("compare", k, x, "--store", world["store"], "--json")
    d = json.loads(p.stdout)
    assert list(d["metrics"]) == ["val_loss"]
    assert d["metrics"]["val_loss"]["best"] == k  # 0.3 < 0.45
    assert d["warnings"] == [] and p.stderr == ""  # same training data: no warning
    assert set(d["only_in"][k]) == {"val_accuracy", "weird"}
    assert set(d["only_in"][x]) == {XSS_KEY, "test_" + XSS_KEY}
    assert set(d["params"]) == {"units", "note", "max_depth"}
    out = cli("compare", k, x, "--store", world["store"]).stdout
    line = next(l for l in out.splitlines() if l.startswith("val_loss"))
    assert "0.3 ★" in line and "keras-run" in out and "lightning" not in out


def test_compare_needs_two_runs(world):
    assert_one_line_error(cli("compare", world["ids"]["keras"], "--store", world["store"], check=False),
                          "at least two")


# ---- export ----------------------------------------------------------------------------------


def test_export_csv_loads_in_pandas_without_options(world, tmp_path):
    pd = pytest.importorskip("pandas")
    rid = world["ids"]["keras"]
    out = tmp_path / "run.csv"
    cli("export", rid, "--store", world["store"], "-o", str(out))
    df = pd.read_csv(out)
    assert list(df.columns) == ["run_id", "key", "step", "epoch", "value", "timestamp", "text"]
    assert str(df["value"].dtype) == "float64"
    rec = trackhooks.open_store(world["store"]).run(rid)
    pts = df[~df.key.str.contains(r"^(?:param|tag)\.")]
    assert len(pts) == sum(len(rec.metric(k)) for k in rec.metric_keys())
    weird = pts[pts.key == "weird"]
    assert math.isnan(weird.value.iloc[0]) and weird.value.iloc[1] == math.inf and weird.value.iloc[2] == 2.5
    assert weird.epoch.isna().all() and list(weird.step) == [0, 1, 2]
    va = pts[pts.key == "val_accuracy"]
    assert list(va.epoch) == [0, 1, 2] and list(va.value) == pytest.approx(rec.metric("val_accuracy").values)
    assert list(va.timestamp) == pytest.approx(rec.metric("val_accuracy").timestamps)
    assert df[df.key == "param.units"].value.iloc[0] == 32
    assert df[df.key == "tag.framework"].text.iloc[0] == "keras"


def test_export_json_to_stdout(world):
    rid = world["ids"]["light0"]
    d = json.loads(cli("export", rid[:12], "--format", "json", "--store", world["store"]).stdout)
    rec = trackhooks.open_store(world["store"]).run(rid)
    assert d["params"] == rec.params and d["tags"] == rec.tags
    tl = d["metrics"]["train_loss"]
    assert tl["steps"] == list(range(50)) and tl["epochs"] == [s // 10 for s in range(50)]
    assert tl["values"] == rec.metric("train_loss").values and len(tl["timestamps"]) == 50
    k = json.loads(cli("export", world["ids"]["keras"], "-f", "json", "--store", world["store"]).stdout)
    assert k["metrics"]["weird"]["values"] == ["NaN", "Infinity", 2.5]  # strict JSON


# ---- errors ----------------------------------------------------------------------------------


def test_errors_are_one_line_without_traceback(world, tmp_path):
    s = world["store"]
    assert_one_line_error(cli("show", "feedfacefeed", "--store", s, check=False), "no run", "feedfacefeed")
    assert_one_line_error(cli("export", "zz", "--store", s, check=False), "no run")
    missing = str(tmp_path / "does" / "not" / "exist")
    for cmd in (["runs"], ["show", "abc"], ["compare", "a", "b"], ["report", "-o", str(tmp_path / "r.html")]):
        assert_one_line_error(cli(*cmd, "--store", missing, check=False), "no trackhooks store", missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    for cmd in (["runs"], ["show", "abc"], ["report", "-o", str(tmp_path / "r.html")]):
        assert_one_line_error(cli(*cmd, "--store", str(empty), check=False), "no runs yet")
    not_a_store = tmp_path / "file"
    not_a_store.write_text("x")
    assert_one_line_error(cli("runs", "--store", str(not_a_store), check=False), "not a directory")
    assert_one_line_error(cli("export", world["ids"]["keras"], "--store", s, "-o", str(tmp_path / "no" / "x.csv"),
                              check=False), "does not exist")


def test_ambiguous_prefix(tmp_path):
    store = str(tmp_path / "s")
    firsts: dict[str, int] = {}
    while max(firsts.values(), default=0) < 2:  # ids are random: log until two share a first digit
        with trackhooks.start_run("amb", store=store) as run:
            pass
        firsts[run.id[0]] = firsts.get(run.id[0], 0) + 1
    prefix = next(c for c, n in firsts.items() if n >= 2)
    assert_one_line_error(cli("show", prefix, "--store", store, check=False), "matches", prefix)


def test_sync_is_wired(world):
    if importlib.util.find_spec("trackhooks.sync") is not None:
        p = cli("sync", "--help")
        assert "--to" in p.stdout
        return
    assert_one_line_error(cli("sync", "--to", "tensorboard:/tmp/x", "--store", world["store"], check=False),
                          "sync is not available")


def test_console_script_and_help():
    exe = shutil.which("trackhooks", path=os.path.dirname(PY))
    if exe is None:
        pytest.skip("the trackhooks console script is not installed next to this python")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for cmd in ("runs", "show", "compare", "export", "report", "sync"):
        assert cmd in p.stdout
    p = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "usage" in p.stderr


def test_import_trackhooks_does_not_load_rich_or_the_cli():
    code = "import sys, trackhooks; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich' " \
           "or m in ('trackhooks.cli', 'trackhooks.report')))"
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]"


# ---- report ----------------------------------------------------------------------------------


def test_report_is_self_contained_and_escapes_user_strings(world, tmp_path):
    out = tmp_path / "report.html"
    info = cli_json("report", "--store", world["store"], "-o", str(out))
    assert info["path"] == str(out) and info["runs"] == len(world["ids"])
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html  # nothing to fetch: works offline
    assert XSS_PARAM not in html and XSS_KEY not in html and XSS_NAME not in html
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in html
    assert html.count("<script") == 2  # the JSON data block and the chart code, nothing injected
    start = html.index('<script type="application/json" id="trackhooks-data">') + len(
        '<script type="application/json" id="trackhooks-data">')
    data = json.loads(html[start:html.index("</script>", start)])
    assert {c["key"] for c in data["charts"]} >= {"val_loss", "train_loss", XSS_KEY}
    assert data["runs"][[r["id"] for r in data["runs"]].index(world["ids"]["xgb"])]["name"] == XSS_NAME
    assert "different training data" in html
    assert "test_" + XSS_KEY not in {c["key"] for c in data["charts"]}  # single values go to a table
    assert 'id="values"' in html and "test_&lt;script&gt;" in html


def test_report_selection_by_runs_and_experiment(world, tmp_path):
    out = str(tmp_path / "r.html")
    assert cli_json("report", world["ids"]["light0"], world["ids"]["keras"], "--store", world["store"],
                    "-o", out)["runs"] == 2
    assert cli_json("report", "--experiment", "mnist", "--store", world["store"], "-o", out)["runs"] == 3
    assert_one_line_error(cli("report", "--experiment", "nope", "--store", world["store"], "-o", out, check=False),
                          "no runs of experiment")
    p = cli("report", "-e", "mnist", "--store", world["store"], "-o", out)
    assert "wrote" in p.stdout and out in p.stdout


def test_report_downsamples_long_series(tmp_path):
    store = str(tmp_path / "s")
    with trackhooks.start_run("long", store=store) as run:
        for i in range(12_000):
            run.log_metric("loss", math.sin(i / 100) + (5.0 if i == 7777 else 0.0), step=i, epoch=i // 3000)
    recs = trackhooks.open_store(store).runs()
    info = write_report(recs, tmp_path / "r.html", store_path=store)
    assert info["downsampled"] == ["loss"] and info["points"] == 12_000
    page, _ = build_report(recs)
    start = page.index('id="trackhooks-data">') + len('id="trackhooks-data">')
    series = json.loads(page[start:page.index("</script>", start)])["charts"][0]["series"][0]
    assert series["n"] == 12_000 and series["shown"] <= 4002 and len(series["y"]) == series["shown"]
    assert max(series["y"]) == pytest.approx(5.0 + math.sin(77.77))  # the spike survives downsampling
    assert series["step"][0] == 0 and series["step"][-1] == 11_999


# ---- helpers (pure functions) ----------------------------------------------------------------


@pytest.mark.parametrize("key,direction", [
    ("val_loss", "min"), ("train_loss", "min"), ("test_rmse", "min"), ("validation_0-mlogloss", "min"),
    ("merror", "min"), ("mean_absolute_error", "min"), ("fit_time_s", "min"), ("val_acc", "max"),
    ("test_accuracy", "max"), ("auc", "max"), ("mean_test_score", "max"), ("mean_test_neg_log_loss", "max"),
    ("rank_test_score", "min"), ("std_test_score", None), ("lr", None), ("lr.0", None), ("learning_rate", None),
    ("epoch", None)])
def test_metric_direction(key, direction):
    assert sm.metric_direction(key) == direction


def test_best_index_and_headline_keys():
    assert sm.best_index([0.3, None, 0.1, float("nan")], "min") == 2
    assert sm.best_index([0.3, None, 0.1], "max") == 0
    assert sm.best_index([0.3, 0.1], None) is None
    assert sm.headline_keys(["lr", "train_loss", "val_acc", "test_acc", "epoch_duration_s", "val_loss"]) == \
        ["test_acc", "val_acc", "val_loss"]


def test_downsample_and_epoch_positions():
    assert downsample_indices([1.0, 2.0]) == [0, 1]
    vals = [float(i % 7) for i in range(50_000)]
    vals[12_345] = 99.0
    idx = downsample_indices(vals, max_points=1000, buckets=400)
    assert len(idx) <= 802 and idx == sorted(idx) and 12_345 in idx and idx[0] == 0 and idx[-1] == 49_999
    assert epoch_positions([None, None]) is None
    assert epoch_positions([0, 0, 1, 1, None, 2]) == [0.0, 0.5, 1.0, 1.5, None, 2.0]


def test_json_for_script_cannot_close_the_script_element():
    text = json_for_script({"k": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"k": "</script><!-- & \u2028"}


def test_format_helpers():
    assert sm.fmt_duration(5.25) == "5.2s" and sm.fmt_duration(125) == "2m05s" and sm.fmt_duration(7300) == "2h01m"
    assert sm.fmt_num(float("nan")) == "NaN" and sm.fmt_num(0.123456) == "0.1235" and sm.fmt_num(None) == "—"
    assert sm.fmt_size(1500) == "1.5 kB"
    assert sm.clean("a\x1b[31mb") == "a\\x1b[31mb"
    assert sm.jsonable({"a": [float("inf"), 1.0]}) == {"a": ["Infinity", 1.0]}
    assert sm.short_ids(["abcdefgh12", "abcdefgh34"]) == {"abcdefgh12": "abcdefgh12", "abcdefgh34": "abcdefgh34"}
    assert sm.schema_text({"kind": "array", "shape": [10, 3], "dtype": "float32"}, 10) == "array 10×3 float32"


def test_csv_export_in_process_matches_columns(world):
    from trackhooks.cli import CSV_COLUMNS, _write_csv

    buf = io.StringIO()
    _write_csv(trackhooks.open_store(world["store"]).run(world["ids"]["cand0"]), buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == CSV_COLUMNS and rows[1][1] == "mean_test_score" and rows[-1][1] == "param.max_depth"


# ---- real framework runs ---------------------------------------------------------------------


def test_real_xgboost_and_sklearn_runs_compare_and_show_their_data(tmp_path):
    pytest.importorskip("trackhooks_xgboost")
    pytest.importorskip("trackhooks_sklearn")
    import xgboost as xgb
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from trackhooks_sklearn import track
    from trackhooks_xgboost import TrackhooksCallback

    X, y = load_digits(return_X_y=True)
    X = (X[:400] / 16.0).astype("float32")
    y = y[:400]
    store = str(tmp_path / "s")
    ids = []
    for name, n in (("xgb-all", 400), ("xgb-half", 200)):
        with trackhooks.start_run("frameworks", name, store=store) as run:
            clf = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, eval_metric="mlogloss",
                                    callbacks=[TrackhooksCallback(run=run)])
            clf.fit(X[:n], y[:n], eval_set=[(X[:n], y[:n])], verbose=False)
        ids.append(run.id)
    with trackhooks.start_run("frameworks", "sk", store=store) as run:
        track(LogisticRegression(max_iter=300), run=run).fit(X, y)
    ids.append(run.id)

    runs = {r["name"]: r for r in cli_json("runs", "--store", store)}
    assert runs["xgb-all"]["framework"] == "xgboost" and runs["sk"]["framework"] == "sklearn"
    shown = cli_json("show", ids[0], "--store", store)
    assert any(d["context"] == "train" for d in shown["datasets"])
    assert shown["metrics"]["validation_0-mlogloss"]["count"] == 5

    # same training data in two frameworks: no warning; different data: warned
    same = cli("compare", ids[0], ids[2], "--store", store, "--json")
    assert json.loads(same.stdout)["runs"][1]["framework"] == "sklearn"
    assert json.loads(same.stdout)["warnings"] == [], same.stdout
    differ = cli("compare", ids[0], ids[1], "--store", store, "--json")
    assert json.loads(differ.stdout)["warnings"] and "different training data" in differ.stderr
    d = json.loads(differ.stdout)
    assert d["metrics"]["validation_0-mlogloss"]["direction"] == "min"
    assert d["metrics"]["validation_0-mlogloss"]["best"] in ids[:2]
    digest = next(x["digest"] for x in shown["datasets"] if x["context"] == "train")
    assert ids[1] not in {r["id"] for r in cli_json("runs", "--store", store, "--dataset", digest[:12])}


def test_terminal_escapes_and_rich_markup_in_user_strings_are_shown_as_text(tmp_path):
    store = str(tmp_path / "s")
    with trackhooks.start_run("e", "evil\x1b[2J\x1b]0;pwn\x07name", params={"p": "[bold]x[/bold]"},
                              store=store) as run:
        run.log_metric("m\x1b[1m", 1.0)
    out = cli("runs", "--store", store).stdout + cli("show", run.id, "--store", store).stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\x1b]0;pwn\\x07name" in out and "[bold]x[/bold]" in out and "m\\x1b[1m" in out
