"""The MLflow mirror against a real `mlflow server` (sqlite backend, proxied artifacts) on 127.0.0.1.

One server serves the whole file (it is slow to start); the outage test kills and restarts it, so it
runs last. Everything MLflow holds is read back with MLflow's own client and compared with the store.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("mlflow")
requests = pytest.importorskip("requests")

import trackhooks  # noqa: E402
from trackhooks import sync  # noqa: E402
from trackhooks_mlflow import decode_key, encode_key, param_value, parse_uri  # noqa: E402
from trackhooks_mlflow.mirror import MAX_PARAM_VALUE, MlflowMirror  # noqa: E402

pytestmark = pytest.mark.timeout(600)

_EXE = os.path.join(os.path.dirname(sys.executable), "mlflow")
MLFLOW_CMD = [_EXE] if os.path.exists(_EXE) else [sys.executable, "-m", "mlflow"]  # the venv's mlflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` in its own process group, restartable on the same port and database."""

    def __init__(self, root):
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = os.path.join(root, "server.log")

    def start(self) -> None:
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no job-runner processes
        cmd = [*MLFLOW_CMD, "server", "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
               "--artifacts-destination", os.path.join(self.root, "artifacts"),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + 400  # a busy 2-core machine needs minutes; CI needs seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log) as f:
                    pytest.fail(f"mlflow server exited: {f.read()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        pytest.fail("mlflow server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the CLI and its uvicorn worker, nothing else
            self.proc.wait(30)
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mlflow-server")))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.url)


def mlflow_run(client, rec):
    exp = client.get_experiment_by_name(rec.experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`trackhooks.run_id` = '{rec.id}'")
    assert len(runs) == 1, runs
    return runs[0]


def assert_metrics_equal(client, mlrun, rec):
    """Every point of every key, with step, millisecond timestamp and value, exactly once."""
    assert sorted(decode_key(k) for k in mlrun.data.metrics) == rec.metric_keys()
    for key in rec.metric_keys():
        s = rec.metric(key)
        want = sorted(zip(s.steps, [int(t * 1000) for t in s.timestamps], [repr(_mlflow_value(v)) for v in s.values]))
        hist = client.get_metric_history(mlrun.info.run_id, encode_key(key))
        got = sorted((m.step, m.timestamp, repr(m.value)) for m in hist)
        assert got == want, key


def _mlflow_value(v: float) -> float:
    # MLflow's SQL stores keep NaN but store infinities as the largest finite doubles
    if v == float("inf"):
        return 1.7976931348623157e308
    if v == float("-inf"):
        return -1.7976931348623157e308
    return v


@pytest.fixture(autouse=True)
def _patient_flush(monkeypatch):
    # finish() waits this long for the mirror: the server on a busy CI machine answers slowly
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "120")


def sync_args(store, to, runs=(), as_json=True):
    return argparse.Namespace(store=store, to=to, runs=list(runs), json=as_json)


# ---- no server needed ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["loss", "train/loss", "val_acc", "a:b", "lr-Adam.0", "acc@1", "bad key!",
                                 "a//b", "/lead", "trail/", "..", ".", "x/../y", "ünï/码", "tab\there", "%20",
                                 ":", "::x", "a" * 400, "é" * 300])
def test_encode_key_is_accepted_by_mlflow_rules_and_reversible(key):
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    name = encode_key(key)
    assert validate_param_and_metric_name(name) and not path_not_unique(name) and len(name) <= 250
    if len(name) < 240:
        assert decode_key(name) == key


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_encode_key_round_trips_any_key(key):
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    name = encode_key(key)
    assert validate_param_and_metric_name(name) and not path_not_unique(name)
    assert decode_key(name) == key


def test_parse_uri_takes_options_out_of_the_query():
    assert parse_uri("mlflow+http://127.0.0.1:5000") == ("http://127.0.0.1:5000", {})
    assert parse_uri("mlflow+http://h:1/?upload_checkpoints=true&timeout=2") == (
        "http://h:1", {"upload_checkpoints": "true", "timeout": "2"})
    assert parse_uri("mlflow+sqlite:////tmp/m.db") == ("sqlite:////tmp/m.db", {})
    m = MlflowMirror("mlflow+http://h:1?upload_checkpoints=1", {})
    assert m.upload_checkpoints and m.cursor_key == "mlflow+http://h:1" and m.backend_kind == "rest"
    assert MlflowMirror("mlflow+sqlite:////tmp/x.db").backend_kind == "client"
    with pytest.raises(ValueError, match="unknown MLflow mirror option"):
        MlflowMirror("mlflow+http://h:1", {"upload_checkpoint": True})
    assert param_value(0.001) == "0.001" and param_value(True) == "True" and param_value([1, "a"]) == '[1, "a"]'


def test_the_plugin_is_found_by_entry_point_and_makes_the_sink():
    pm = trackhooks.plugin_manager()
    assert pm.get_plugin("mlflow") is not None
    sink = pm.hook.trackhooks_make_sink(uri="mlflow+http://127.0.0.1:1", options={})
    assert isinstance(sink, MlflowMirror)
    assert pm.hook.trackhooks_make_sink(uri="other://bucket/x", options={}) is None


@pytest.mark.timeout(120)
def test_a_server_that_never_answers_does_not_block_training(store_path, monkeypatch):
    # a socket that accepts connections (the kernel's backlog) but never answers: the worst outage
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(50)
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "1")
    uri = f"mlflow+http://127.0.0.1:{blackhole.getsockname()[1]}?timeout=0.5"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with trackhooks.start_run("hang", mirrors=[uri]) as run:
                for i in range(200):
                    run.log_metric("loss", 1.0 / (i + 1), step=i)
                run.flush()
                run.log_metric("loss", 0.0, step=200)
                run.flush()
    finally:
        blackhole.close()
    rec = trackhooks.open_store(store_path).run(run.id)
    assert rec.status == "finished" and len(rec.metric("loss")) == 201
    mirror_warnings = [w for w in caught if "mlflow+http" in str(w.message)]
    assert len(mirror_warnings) <= 1
    state = sync.cursor_state(trackhooks.open_store(store_path), uri.split("?")[0], run.id)
    assert state is None or not state.get("metrics")  # nothing was acknowledged, nothing is assumed sent


# ---- against the server ----------------------------------------------------------------------


def test_live_mirror_holds_exactly_what_the_store_holds(store_path, server, client, tmp_path):
    uri = f"mlflow+{server.url}"
    ckpt = tmp_path / "epoch=1.ckpt"
    ckpt.write_bytes(b"weights")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    params = {"optimizer": {"lr": 0.01, "name": "adam"}, "layers": [64, 32], "long": "x" * 7000,
              "odd key!": 1, "flag": True}
    with trackhooks.start_run("mirror-live", "live-1", mirrors=[uri], params=params,
                              tags={"framework": "test", "a:b": "c"}) as run:
        for i in range(1300):  # two keys: 2600 points, three log-batch requests at least
            run.log_metrics({"loss": 1.0 / (i + 1), "acc/top1": i / 1300}, step=i, epoch=i // 100)
        for v in (float("nan"), float("inf"), float("-inf"), 2.5, 2.5):
            run.log_metric("odd values", v, step=7)  # the repeated 2.5 may share its millisecond
        run.log_checkpoint(ckpt, step=1299, epoch=12, metrics={"loss": 0.1}, best=True)
        run.log_artifact(notes, name="docs/notes.txt")
        with trackhooks.start_run("mirror-live", "child-1", mirrors=[uri], parent=run) as child:
            child.log_metric("score", 0.5)
    store = trackhooks.open_store(store_path)
    rec = store.run(run.id)
    mlrun = mlflow_run(client, rec)
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == "live-1"
    assert mlrun.info.end_time == int(rec.end_time * 1000)
    # metrics point for point (the repeated identical point gets the next millisecond, see docs)
    for key in ("loss", "acc/top1"):
        s = rec.metric(key)
        hist = client.get_metric_history(mlrun.info.run_id, encode_key(key))
        assert sorted((m.step, m.timestamp, m.value) for m in hist) == sorted(
            zip(s.steps, [int(t * 1000) for t in s.timestamps], s.values))
    odd = client.get_metric_history(mlrun.info.run_id, "odd values")
    assert len(odd) == 5 and [m.step for m in odd] == [7] * 5
    got = sorted(repr(m.value) for m in odd)
    assert got == sorted(["nan", "1.7976931348623157e+308", "-1.7976931348623157e+308", "2.5", "2.5"])
    # params: every one, keys decoded back, long value cut to MLflow's limit with a tag saying so
    ml_params = {decode_key(k): v for k, v in mlrun.data.params.items()}
    assert set(ml_params) == set(rec.params)
    for k, v in rec.params.items():
        assert ml_params[k] == param_value(v)[:MAX_PARAM_VALUE]
    assert "7000 characters" in mlrun.data.tags["trackhooks.truncated.param.long"]
    tags = {decode_key(k): v for k, v in mlrun.data.tags.items()}
    for k, v in rec.tags.items():
        assert tags[k] == v
    assert mlrun.data.tags["trackhooks.run_id"] == rec.id
    # checkpoints are tags by default, artifacts are uploaded
    assert mlrun.data.tags["trackhooks.checkpoint.0"] == str(ckpt)
    assert mlrun.data.tags["trackhooks.best_checkpoint"] == str(ckpt)
    assert json.loads(mlrun.data.tags["trackhooks.checkpoint.0.info"])["step"] == 1299
    assert [f.path for f in client.list_artifacts(mlrun.info.run_id, "docs")] == ["docs/notes.txt"]
    assert not client.list_artifacts(mlrun.info.run_id, "checkpoints")
    path = client.download_artifacts(mlrun.info.run_id, "docs/notes.txt", str(tmp_path / "dl"))
    assert open(path).read() == "hello"
    # the child is nested under its parent in MLflow
    child_ml = mlflow_run(client, store.run(child.id))
    assert child_ml.data.tags["mlflow.parentRunId"] == mlrun.info.run_id
    # replaying now sends nothing: the cursors say MLflow has it all
    out = sync.sync(store, uri, [run.id, child.id])
    assert all(not r.get("points") and not r.get("params") and not r.get("status") for r in out), out


def test_upload_checkpoints_option_from_the_uri(store_path, server, client, tmp_path):
    uri = f"mlflow+{server.url}?upload_checkpoints=true"
    a, b = tmp_path / "a.ckpt", tmp_path / "ckdir"
    a.write_bytes(b"A" * 100)
    b.mkdir()
    (b / "model.bin").write_bytes(b"B")
    with trackhooks.start_run("mirror-ckpt", mirrors=[uri]) as run:
        run.log_checkpoint(a, step=1)
        run.log_checkpoint(b, step=2, best=True)
    rec = trackhooks.open_store(store_path).run(run.id)
    mlrun = mlflow_run(client, rec)
    files = {f.path for f in client.list_artifacts(mlrun.info.run_id, "checkpoints")}
    assert files == {"checkpoints/a.ckpt", "checkpoints/ckdir"}
    assert [f.path for f in client.list_artifacts(mlrun.info.run_id, "checkpoints/ckdir")] == [
        "checkpoints/ckdir/model.bin"]


def test_client_backend_and_sync_of_a_run_logged_without_mirror(store_path, server, client, capsys):
    with trackhooks.start_run("mirror-later", "offline", params={"n": 3}) as run:
        for i in range(50):
            run.log_metric("x", float(i), step=i % 10)  # repeated steps are points of their own
    uri = f"mlflow+{server.url}?backend=client"
    assert sync.main(sync_args(store_path, uri, [run.id[:10]])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["points"] == 50 and report["runs"][0]["status"] == "FINISHED"
    rec = trackhooks.open_store(store_path).run(run.id)
    assert_metrics_equal(client, mlflow_run(client, rec), rec)
    # the REST backend sees the same cursor (same tracking URI): nothing left to send
    assert sync.main(sync_args(store_path, f"mlflow+{server.url}", [run.id], as_json=False)) == 0
    assert "up to date" in capsys.readouterr().out
    # a cursor is only as good as the server's memory: a run deleted in MLflow is sent again in full
    client.delete_run(mlflow_run(client, rec).info.run_id)
    assert sync.main(sync_args(store_path, f"mlflow+{server.url}", [run.id])) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["points"] == 50
    assert_metrics_equal(client, mlflow_run(client, rec), rec)


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, trackhooks
    store, uri = sys.argv[1], sys.argv[2]
    run = trackhooks.start_run("mirror-outage", "outage", store=store, mirrors=[uri], params={"lr": 0.01})
    for i in range(300):
        run.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 1000}, step=i)
    run.flush()
    print("PHASE1", run.id, flush=True)
    sys.stdin.readline()  # the test kills the server now
    for i in range(300, 1000):
        run.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 1000}, step=i)
    run.log_params({"late": "yes"})
    run.set_tags({"phase": "2"})
    run.finish()
    print("DONE", flush=True)
""")


def test_server_killed_mid_run_then_sync_holds_every_point_once(store_path, server, client, tmp_path):
    """Runs last in this file: it kills and restarts the module's server."""
    uri = f"mlflow+{server.url}"
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = dict(os.environ, TRACKHOOKS_MIRROR_TIMEOUT="60", TRACKHOOKS_FLUSH_INTERVAL="0.2")
    proc = subprocess.Popen([sys.executable, str(script), store_path, uri], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().split()
        assert line[:1] == ["PHASE1"], (line, proc.stderr.read() if proc.poll() is not None else "")
        run_id = line[1]
        store = trackhooks.open_store(store_path)
        mlrun = mlflow_run(client, store.run(run_id))
        assert len(client.get_metric_history(mlrun.info.run_id, "loss")) == 300  # mirrored live
        server.kill()
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)  # training ends although the mirror is gone
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "DONE" in out and proc.returncode == 0, err
    assert err.count("trackhooks sync --to") == 1, err  # warned once, with the way to catch up
    rec = store.run(run_id)
    assert rec.status == "finished" and len(rec.metric("loss")) == 1000
    server.start()
    args = sync_args(store_path, uri, [run_id])
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        assert sync.main(args) == 0
    report = json.loads(buf.getvalue())["runs"][0]
    assert report["points"] == 1400 and report["status"] == "FINISHED" and report["params"] == 1
    mlrun = mlflow_run(client, rec)
    assert mlrun.info.status == "FINISHED"
    assert_metrics_equal(client, mlrun, rec)
    assert mlrun.data.params == {"lr": "0.01", "late": "yes"} and mlrun.data.tags["phase"] == "2"
    # twice: nothing sent, nothing duplicated
    buf = StringIO()
    with redirect_stdout(buf):
        assert sync.main(args) == 0
    again = json.loads(buf.getvalue())["runs"][0]
    assert again["points"] == 0 and again["params"] == 0 and again["status"] is None
    assert_metrics_equal(client, mlflow_run(client, rec), rec)
