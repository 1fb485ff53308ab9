"""The team store on PostgreSQL (trackhooks-postgres) against a real server (tests/pgserver.py).

The read-API tests of tests/test_store.py and tests/test_core.py run on this engine too (the
``any_store`` fixture); here: exact replication of everything a run holds, repeated syncs, many
writers, outages of a private cluster, the read-only role, passwords, bad input.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings

import pytest

pytest.importorskip("psycopg")

import trackhooks  # noqa: E402
from trackhooks import StoreError  # noqa: E402
from trackhooks.plugin import spool_path  # noqa: E402
from trackhooks.sink import Batch, MediaEvent  # noqa: E402
from trackhooks.store.sqlite import LocalStoreSink  # noqa: E402
from trackhooks.sync import sync  # noqa: E402
from trackhooks_postgres import replica, schema  # noqa: E402

from tests.pgserver import free_port, psql, schema_uri, wait_for, with_db  # noqa: E402

TRACKHOOKS = [sys.executable, "-m", "trackhooks"]


def _schema_of(uri: str) -> str:
    return uri.rsplit("search_path%3D", 1)[1]


def _db_of(uri: str) -> str:
    return uri.split("?")[0]


def cli(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    out = subprocess.run([*TRACKHOOKS, *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    if check and out.returncode != 0:
        raise AssertionError(f"trackhooks {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def floats(values) -> list[str]:
    return [repr(v) for v in values]  # NaN == NaN, and -0.0 != 0.0


def snapshot(store: trackhooks.Store) -> dict:
    """Everything the read API returns, comparable across engines."""
    out: dict = {"experiments": store.experiments(), "metric_run_counts": store.metric_run_counts()}
    runs = store.runs()
    ids = [r.id for r in runs]
    out["listing"] = [{k: v for k, v in row.items() if k != "duration"} for row in store.listing()]
    out["live"] = {k: {**v, "counts": dict(sorted(v["counts"].items()))} for k, v in store.live(ids).items()}
    out["params_of"] = store.params_of(ids)
    out["summaries_of"] = json.loads(json.dumps(store.metric_summaries_of(ids), default=repr))
    for r in runs:
        rd: dict = {}
        for attr in ("id", "experiment", "name", "status", "stored_status", "parent_id", "start_time", "end_time",
                     "pid", "host", "heartbeat", "system", "note", "archived", "params", "tags"):
            rd[attr] = getattr(r, attr)
        rd["metric_keys"] = r.metric_keys()
        rd["summaries"] = json.loads(json.dumps(r.metric_summaries(), default=repr))
        for k in r.metric_keys():
            m = r.metric(k)
            rd[f"metric:{k}"] = (m.steps, m.epochs, floats(m.values), floats(m.timestamps), len(m))
        rd["checkpoints"] = [vars(c) for c in r.checkpoints()]
        rd["artifacts"] = [(a.name, a.sha256, a.size, a.time, open(a.path, "rb").read()) for a in r.artifacts()]
        rd["datasets"] = [vars(d) for d in r.datasets()]
        rd["media_keys"] = r.media_keys()
        rd["media"] = {k: [(m.kind, m.step, m.epoch, m.timestamp, m.data, m.sha256, m.ext, m.width, m.height,
                            open(m.path, "rb").read() if m.path else None) for m in r.media(k)]
                       for k in r.media_keys()}
        rd["children"] = [c.id for c in r.children()]
        out[r.id] = rd
    for key in sorted({k for r in runs for k in r.tags}):
        out[f"tag_values:{key}"] = store.tag_values(key)
    for key in sorted({k for r in runs for k in r.params}):
        out[f"param_values:{key}"] = store.param_values(key)
    for key in sorted(store.metric_run_counts()):
        out[f"metric_last_values:{key}"] = floats(sorted(store.metric_last_values(key).items()))
    return out


def _fill(uri: str, tmp_path) -> dict:
    """Runs with every kind of record, written to the team store ``uri`` (through the spool)."""
    import numpy as np

    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"weights" * 100)
    ck2 = tmp_path / "ck2.pt"
    ck2.write_bytes(b"better" * 100)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("lr: 0.1\n")
    with trackhooks.start_run("exp", name="parent", params={"opt": {"lr": 0.1, "betas": (0.9, 0.99)}, "n": None},
                              tags={"framework": "test", "team": "vision"}, store=uri) as parent:
        for i in range(300):
            parent.log_metrics({"loss": 1.0 / (i + 1), "odd": [math.nan, math.inf, -math.inf, -0.0, 1e-320][i % 5]},
                               step=i, epoch=i // 100)
            if i % 97 == 0:
                parent.flush()  # several blocks per key
        parent.log_metric("odd", float(2**80), step=-5)
        parent.log_checkpoint(ck, step=10, epoch=0, metrics={"val": 0.5}, best=True, monitor="val", mode="min")
        parent.log_checkpoint(ck2, step=20, epoch=1, metrics={"val": 0.4}, best=True, monitor="val", mode="min")
        parent.update_checkpoint(ck, deleted=True)
        parent.log_artifact(cfg)
        parent.log_artifact(cfg, name="copies/config.yaml")  # the same bytes: stored once
        parent.log_text("notes.md", "# hello\n")
        parent.log_dataset(np.arange(60, dtype=np.float64).reshape(20, 3), name="train-x")
        parent.set_note("**why** this run")
        kids = []
        for j in range(2):
            with trackhooks.start_run("exp", name=f"child{j}", parent=parent, params={"j": j}, store=uri) as kid:
                kid.log_metric("score", j + 0.5)
            kids.append(kid.id)
    with pytest.raises(RuntimeError):
        with trackhooks.start_run("other", name="broken", store=uri) as bad:
            bad.log_metric("loss", 3.0)
            raise RuntimeError("boom")
    # a run whose process died without finishing: "running" stored, read as killed
    code = ("import trackhooks, os, sys; r = trackhooks.start_run('other', name='dead', store=sys.argv[1]); "
            "r.log_metric('m', 1.0); r.flush(); print(r.id, flush=True); os._exit(0)")
    dead = subprocess.run([sys.executable, "-c", code, uri], capture_output=True, text=True, check=True,
                          env=dict(os.environ)).stdout.strip()
    return {"parent": parent.id, "kids": kids, "bad": bad.id, "dead": dead}


def test_round_trip_of_everything_the_read_api_returns(pg_uri, tmp_path):
    ids = _fill(pg_uri, tmp_path)
    spool = trackhooks.open_store(spool_path())
    # rich records (images, histograms) written to the spool, then replicated like everything else
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    sha = hashlib.sha256(png).hexdigest()
    sink = LocalStoreSink(spool_path())
    now = time.time()
    sink.write(Batch(media=[
        MediaEvent(ids["parent"], "samples", "image", 0, None, now, {"caption": "a"}, png, sha, "png", 2, 3),
        MediaEvent(ids["parent"], "samples", "image", 1, 0, now, {"caption": "b"}, png, sha, "png", 2, 3),
        MediaEvent(ids["parent"], "w", "histogram", 0, None, now, {"edges": [0, 1], "counts": [5]}),
    ]))
    sink.close()
    reports = sync(spool, pg_uri)
    assert not [r for r in reports if "error" in r]
    team = trackhooks.open_store(pg_uri)
    assert team.engine == "postgres" and "@" in team.uri
    mine, theirs = snapshot(spool), snapshot(team)
    assert theirs == mine
    # what that comparison covers, stated once against known values
    rec = team.run(ids["parent"])
    assert rec.params == {"opt.lr": 0.1, "opt.betas": [0.9, 0.99], "n": None} and rec.note == "**why** this run"
    odd = rec.metric("odd")
    assert math.isnan(odd.values[0]) and odd.values[1:5] == [math.inf, -math.inf, -0.0, 1e-320]
    assert odd.steps[-1] == -5 and odd.values[-1] == float(2**80) and len(odd) == 301
    assert rec.metric("loss").epochs[:1] == [0] and rec.metric("loss").epochs[-1] == 2
    assert rec.metric_summaries()["odd"] == {"count": 301, "last_step": -5, "last": float(2**80),
                                             "min": -math.inf, "max": math.inf}
    assert [(c.best, c.deleted) for c in rec.checkpoints()] == [(False, True), (True, False)]
    assert [c.id for c in rec.children()] == ids["kids"]
    assert rec.datasets()[0].n_rows == 20 and rec.datasets()[0].name == "train-x"
    assert [m.data for m in rec.media("samples")] == [{"caption": "a"}, {"caption": "b"}]
    assert open(rec.media("samples")[0].path, "rb").read() == png
    assert team.run(ids["bad"]).status == "failed"
    dead = team.run(ids["dead"])
    assert dead.status == "killed" and dead.stored_status == "running" and dead.metric("m").values == [1.0]
    # content-addressed: the config's bytes (two artifacts) and the image (two records) once each
    n_files = psql(_db_of(pg_uri), f"SELECT count(*), count(DISTINCT sha256) FROM {_schema_of(pg_uri)}.files")[0][0]
    assert n_files[0] == n_files[1] == 3  # config.yaml, notes.md, the png


def test_killed_across_hosts_follows_the_replicated_heartbeat(pg_uri):
    with trackhooks.start_run(store=pg_uri) as run:
        run.flush()
        s = _schema_of(pg_uri)
        team = trackhooks.open_store(pg_uri)
        rec = team.run(run.id)
        assert rec.status == "running" and rec.heartbeat == trackhooks.open_store(spool_path()).run(run.id).heartbeat
        # seen from another host: a fresh heartbeat is alive, a stale one is killed
        psql(_db_of(pg_uri), f"UPDATE {s}.runs SET host='elsewhere', heartbeat={time.time()} WHERE id='{run.id}'")
        assert team.run(run.id).status == "running"
        psql(_db_of(pg_uri), f"UPDATE {s}.runs SET heartbeat={time.time() - 3600} WHERE id='{run.id}'")
        assert team.run(run.id).status == "killed"
        assert [r["status"] for r in team.listing()] == ["killed"]
    # the writer's next update (its final status and heartbeat) wins again
    assert trackhooks.open_store(pg_uri).run(run.id).status == "finished"


def test_replication_is_exact_across_repeated_syncs_and_lost_cursors(pg_uri):
    with trackhooks.start_run(store=pg_uri, params={"p": 1}) as run:
        for i in range(5000):
            run.log_metrics({"a": float(i), "b": -float(i)})
            if i % 1000 == 999:
                run.flush()
    spool = spool_path()
    s, db = _schema_of(pg_uri), _db_of(pg_uri)

    def counts():
        return psql(db, f"SELECT k.key, k.n, (SELECT sum(b.n) FROM {s}.metric_blocks b WHERE b.key_id = k.id), "
                        f"k.min_value, k.max_value FROM {s}.metric_keys k ORDER BY k.key")[0]

    expected = [("a", 5000, 5000, 0.0, 4999.0), ("b", 5000, 5000, -4999.0, 0.0)]
    assert counts() == expected
    for _ in range(2):
        out = cli("sync", "--to", pg_uri, "--store", spool, check=True)
        assert "up to date" in out.stdout and "1 of 1 runs in sync" in out.stdout
    assert counts() == expected
    # the spool forgets what it sent (a restored spool, a deleted cursor): everything is sent again,
    # and the team store keeps every point once
    import sqlite3

    conn = sqlite3.connect(os.path.join(spool, "trackhooks.db"))
    conn.execute("DELETE FROM mirror_cursors")
    conn.commit()
    conn.close()
    out = cli("sync", "--to", pg_uri, "--store", spool, check=True)
    assert "status finished" in out.stdout
    assert counts() == expected
    rec = trackhooks.open_store(pg_uri).run(run.id)
    assert rec.metric("a").values == [float(i) for i in range(5000)] and rec.params == {"p": 1}
    assert rec.metric_summaries()["b"] == {"count": 5000, "last_step": 4999, "last": -4999.0, "min": -4999.0,
                                           "max": 0.0}


def test_a_local_store_mirrors_into_a_team_store(pg_uri, tmp_path):
    local = str(tmp_path / "local")
    with trackhooks.start_run(store=local, mirrors=[pg_uri]) as run:
        run.log_metric("m", 2.0)
    assert trackhooks.open_store(pg_uri).run(run.id).metric("m").values == [2.0]
    assert trackhooks.open_store(local).run(run.id).metric("m").values == [2.0]
    assert not os.path.exists(spool_path())  # a local store with a mirror needs no spool


def test_a_block_that_arrives_late_counts_once_and_never_moves_last(pg_uri):
    # a block the team store lacks (sent again by another replayer, or re-sent after a lost cursor)
    # is counted once by the statement that inserts it and, being older than the last block there,
    # leaves last_step/last_value alone
    with trackhooks.start_run(store=pg_uri) as run:
        for i in range(3000):
            run.log_metrics({"a": float(i), "b": math.nan if i == 2999 else -1.0 - i}, step=i)
            if i % 1000 == 999:
                run.flush()
    s, db = _schema_of(pg_uri), _db_of(pg_uri)
    keys = f"{s}.metric_keys"
    n0, seqs = psql(db, f"SELECT b.n, (SELECT count(*) FROM {s}.metric_blocks x WHERE x.key_id = k.id) "
                        f"FROM {s}.metric_blocks b JOIN {keys} k ON k.id = b.key_id WHERE k.key = 'a' AND b.seq = 0")[0][0]
    assert seqs >= 3
    psql(db, f"DELETE FROM {s}.metric_blocks b USING {keys} k WHERE k.id = b.key_id AND k.key = 'a' AND b.seq = 0",
         f"UPDATE {keys} SET n = n - {n0} WHERE key = 'a'")
    import sqlite3

    conn = sqlite3.connect(os.path.join(spool_path(), "trackhooks.db"))
    conn.execute("DELETE FROM mirror_cursors")
    conn.commit()
    conn.close()
    out = cli("sync", "--to", pg_uri, "--store", spool_path(), check=True)
    assert f"{n0} points" in out.stdout
    rec = trackhooks.open_store(pg_uri).run(run.id)
    assert rec.metric("a").values == [float(i) for i in range(3000)]
    summaries = rec.metric_summaries()
    assert summaries["a"] == {"count": 3000, "last_step": 2999, "last": 2999.0, "min": 0.0, "max": 2999.0}
    assert summaries["b"]["count"] == 3000 and summaries["b"]["last"] is None and summaries["b"]["min"] == -2999.0
    assert psql(db, f"SELECT key, last_seq = (SELECT max(seq) FROM {s}.metric_blocks WHERE key_id = k.id) "
                    f"FROM {keys} k ORDER BY key")[0] == [("a", True), ("b", True)]
    assert json.dumps(trackhooks.open_store(pg_uri).metric_summaries_of([run.id])) == \
        json.dumps(trackhooks.open_store(spool_path()).metric_summaries_of([run.id]))


def test_a_backlog_goes_in_several_rounds_and_statements_exactly(pg_uri, tmp_path, monkeypatch):
    # small budgets: a catch-up takes several rounds (transactions), each of several statements, a
    # key's blocks split across both; every point lands once and "finished" comes with the last
    monkeypatch.setattr(replica, "ROUND_POINTS", 1500)
    monkeypatch.setattr(replica, "STATEMENT_POINTS", 700)
    local = str(tmp_path / "local")
    with trackhooks.start_run("e", store=local) as run:
        for i in range(2000):
            run.log_metrics({"a": float(i), "b": -float(i) - 1, "c": float(i % 7)}, step=i)
            if i % 300 == 299:
                run.flush()
    rounds = []
    real_round = replica.PostgresReplica._round
    monkeypatch.setattr(replica.PostgresReplica, "_round", lambda self, *a: rounds.append(1) or real_round(self, *a))
    report = sync(trackhooks.open_store(local), pg_uri)[0]
    assert report["points"] == 6000 and report["status"] == "finished", report
    assert len(rounds) >= 4
    rec = trackhooks.open_store(pg_uri).run(run.id)
    assert rec.status == "finished" and rec.metric("b").values == [-float(i) - 1 for i in range(2000)]
    assert rec.metric_summaries() == trackhooks.open_store(local).run(run.id).metric_summaries()
    s = _schema_of(pg_uri)
    assert psql(_db_of(pg_uri), f"SELECT k.key, k.n, (SELECT sum(b.n) FROM {s}.metric_blocks b WHERE b.key_id = k.id) "
                                f"FROM {s}.metric_keys k ORDER BY k.key")[0] == [("a", 2000, 2000), ("b", 2000, 2000),
                                                                              ("c", 2000, 2000)]


def test_a_run_the_server_refuses_is_named_and_the_others_go_on(pg_uri, tmp_path, capfd):
    # a round is one pipelined transaction: a statement the server refuses rolls the run's round
    # back, is reported as that run's error (not an outage), and leaves nothing else on stderr
    import sqlite3

    local = str(tmp_path / "local")
    with trackhooks.start_run("e", store=local) as bad:
        bad.log_metric("m", 1.0)
    with trackhooks.start_run("e", store=local) as good:
        good.log_metric("m", 2.0)
    conn = sqlite3.connect(os.path.join(local, "trackhooks.db"))
    conn.execute("UPDATE runs SET archived=? WHERE id=?", (2**40, bad.id))  # the team store's column is integer
    conn.commit()
    conn.close()
    reports = {r["run_id"]: r for r in sync(trackhooks.open_store(local), pg_uri)}
    assert "refused run" in reports[bad.id]["error"] and "out of range" in reports[bad.id]["error"]
    assert "error" not in reports[good.id] and reports[good.id]["status"] == "finished"
    team = trackhooks.open_store(pg_uri)
    assert [r.id for r in team.runs()] == [good.id] and team.run(good.id).metric("m").values == [2.0]
    assert psql(_db_of(pg_uri), f"SELECT count(*) FROM {_schema_of(pg_uri)}.metric_keys")[0] == [(1,)]
    assert "error ignored" not in capfd.readouterr().err


def test_a_run_deleted_while_its_process_still_logs_stays_deleted(pg_uri):
    # deleted elsewhere while this process goes on (its heartbeat looked stale there): the round
    # finds the tombstone and rolls back everything it sent, metric keys included
    s, db = _schema_of(pg_uri), _db_of(pg_uri)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with trackhooks.start_run(store=pg_uri) as run:
            run.log_metrics({"a": 1.0, "b": 2.0})
            assert run.flush()
            psql(db, f"DELETE FROM {s}.metric_blocks WHERE key_id IN (SELECT id FROM {s}.metric_keys "
                     f"WHERE run_id = '{run.id}')", f"DELETE FROM {s}.metric_keys WHERE run_id = '{run.id}'",
                 f"DELETE FROM {s}.runs WHERE id = '{run.id}'",
                 f"INSERT INTO {s}.deleted_runs (id, time) VALUES ('{run.id}', 0)")
            run.log_metrics({"a": 3.0, "b": 4.0, "c": 5.0})
            run.flush()
    assert len([m for m in _team_messages(record) if "was deleted from the team store" in m]) == 1
    assert not [m for m in _team_messages(record) if "refused" in m or "failed" in m]
    for table, col in (("runs", "id"), ("metric_keys", "run_id"), ("params", "run_id")):
        assert psql(db, f"SELECT count(*) FROM {s}.{table} WHERE {col} = '{run.id}'")[0] == [(0,)], table


def test_a_writer_that_dies_with_its_cursor_behind_is_caught_up_exactly(pg_uri):
    # the live replication writes its cursor into the spool at most every CURSOR_EVERY_S: a process
    # that dies leaves a cursor behind what the team store has, and the next sync re-sends from
    # there, every point still once
    code = ("import os, sys, trackhooks, trackhooks_postgres.replica as rp\n"
            "rp.CURSOR_EVERY_S = 3600  # however slow the machine: no cursor write after the first\n"
            "r = trackhooks.start_run(store=sys.argv[1])\n"
            "for i in range(2000):\n    r.log_metrics({'a': float(i), 'b': 1.0}, step=i)\n"
            "    if i % 500 == 499:\n        r.flush()\nprint(r.id, flush=True)\nos._exit(0)\n")
    run_id = subprocess.run([sys.executable, "-c", code, pg_uri], capture_output=True, text=True, check=True,
                            env=dict(os.environ)).stdout.strip()
    from trackhooks.sync import cursor_state

    s, db = _schema_of(pg_uri), _db_of(pg_uri)

    def counts():
        return psql(db, f"SELECT k.key, k.n, (SELECT sum(b.n) FROM {s}.metric_blocks b WHERE b.key_id = k.id), "
                        f"k.last_step FROM {s}.metric_keys k ORDER BY k.key")[0]

    assert counts() == [("a", 2000, 2000, 1999), ("b", 2000, 2000, 1999)]  # flush() waited for the team store
    spool = trackhooks.open_store(spool_path())
    mirror = replica.PostgresReplica(pg_uri).cursor_key
    behind = cursor_state(spool, mirror, run_id)["m"]["a"][1]
    assert behind < 2000
    out = cli("sync", "--to", pg_uri, "--store", spool_path(), check=True)
    assert "1 of 1 runs in sync" in out.stdout and " points" not in out.stdout  # all of it was there
    assert counts() == [("a", 2000, 2000, 1999), ("b", 2000, 2000, 1999)]
    assert cursor_state(spool, mirror, run_id)["m"]["a"][1] == 2000
    assert trackhooks.open_store(pg_uri).run(run_id).metric("a").values == [float(i) for i in range(2000)]


def test_a_store_of_schema_2_is_upgraded_with_its_metrics(pg_uri):
    # schema 3 adds metric_keys.last_seq (filled in from the blocks there) and lz4 for the block
    # columns; runs replicated before the upgrade keep their summaries, and go on replicating
    # (written by another process: this one's first connection then finds the store at 2)
    code = ("import trackhooks, sys\nwith trackhooks.start_run(store=sys.argv[1]) as r:\n"
            "    for i in range(500):\n        r.log_metric('m', float(i))\nprint(r.id)")
    run_id = subprocess.run([sys.executable, "-c", code, pg_uri], capture_output=True, text=True, check=True,
                            env=dict(os.environ)).stdout.strip()
    s, db = _schema_of(pg_uri), _db_of(pg_uri)
    new_pg = int(psql(db, "SHOW server_version_num")[0][0][0]) >= 140000  # column compression
    old_storage = ", ".join(f"ALTER COLUMN {c} SET STORAGE EXTERNAL" + (f", ALTER COLUMN {c} SET COMPRESSION DEFAULT"
                                                                       if new_pg else "")
                            for c in ("steps", "epochs", "vals", "times"))
    psql(db, f"ALTER TABLE {s}.metric_keys DROP COLUMN last_seq", f"ALTER TABLE {s}.metric_blocks {old_storage}",
         f"UPDATE {s}.meta SET value='2' WHERE key='schema_version'")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with trackhooks.start_run(store=pg_uri, resume=run_id) as again:
            for i in range(500, 800):
                again.log_metric("m", float(i))
    assert not _team_messages(record)
    assert psql(db, f"SELECT value FROM {s}.meta WHERE key='schema_version'")[0] == [(str(schema.SCHEMA_VERSION),)]
    rec = trackhooks.open_store(pg_uri).run(run_id)
    assert rec.metric("m").values == [float(i) for i in range(800)]
    assert rec.metric_summaries()["m"] == {"count": 800, "last_step": 799, "last": 799.0, "min": 0.0, "max": 799.0}
    if new_pg:
        import psycopg

        try:
            psql(db, "CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)")
            has_lz4 = True
        except psycopg.errors.FeatureNotSupported:
            has_lz4 = False  # a server built without lz4: the columns stay as they were
        lz4 = psql(db, "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = "
                       f"'{s}.metric_blocks'::regclass AND attname IN ('steps', 'epochs', 'vals', 'times') "
                       "AND attcompression = 'l'")[0][0][0]
        assert lz4 == (4 if has_lz4 else 0)


WRITER = """
import sys, trackhooks
uri, i = sys.argv[1], int(sys.argv[2])
with trackhooks.start_run("many", name=f"w{i}", params={"i": i}, store=uri) as run:
    for s in range(1000):
        run.log_metrics({"a": s + i, "b": s * 0.5, "c": -s, "d": i}, step=s)
        if s % 250 == 249:
            run.flush()
print(run.id)
"""


def test_eight_processes_write_one_team_store_at_once(pg_uri):
    # the schema does not exist yet: the first writers race to create it (advisory lock)
    # finish() waits for the team store (bounded: 10 s by default, too short for 8 writers on a busy
    # 2-core machine; what is not there by then would only come with the next sync)
    env = {**os.environ, "TRACKHOOKS_MIRROR_TIMEOUT": "240"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_uri, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(8)]
    ids, errs = [], {}
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"writer exited with {p.returncode}: {err}"
        # no outage warnings: concurrent writers do not fail. (A server at max_connections, or one
        # that accepts a connection only after connect_timeout, would show here, by name.)
        assert "team store" not in err, err
        ids.append(out.strip())
        errs[out.strip()] = err
    team = trackhooks.open_store(pg_uri)
    runs = {r.id: r for r in team.runs(experiment="many")}
    assert sorted(runs) == sorted(ids) and len(set(ids)) == 8, (sorted(runs), errs)
    for rid in ids:
        # what the writer printed goes with every assertion: a failure here once came without it
        r, why = runs[rid], errs[rid]
        i = r.params["i"]
        assert r.status == "finished" and r.name == f"w{i}", (r.status, r.stored_status, r.name, why)
        assert r.metric("a").values == [float(s + i) for s in range(1000)], why
        assert {k: v["count"] for k, v in r.metric_summaries().items()} == {"a": 1000, "b": 1000, "c": 1000, "d": 1000}, \
            (r.metric_summaries(), why)
        assert r.metric_summaries()["c"]["min"] == -999.0, why
    assert psql(_db_of(pg_uri), f"SELECT value FROM {_schema_of(pg_uri)}.meta WHERE key='schema_version'")[0] == \
        [(str(schema.SCHEMA_VERSION),)]


# ---- outages (a private cluster we may stop) ----------------------------------------------------


@pytest.fixture
def outage_uri(private_pg, tmp_path, monkeypatch):
    name = "o_" + uuid.uuid4().hex[:8]
    psql(private_pg.url(), f"CREATE DATABASE {name}")
    monkeypatch.setenv("TRACKHOOKS_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("TRACKHOOKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "5")
    monkeypatch.delenv("TRACKHOOKS_MIRRORS", raising=False)
    yield private_pg.url(name)
    private_pg.start() if not _up(private_pg) else None


def _up(cluster) -> bool:
    try:
        psql(cluster.url(), "SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def _team_messages(record) -> list[str]:
    return [str(w.message) for w in record if "team store" in str(w.message)]


def test_outage_mid_run_never_stops_training_and_catches_up(private_pg, outage_uri):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run = trackhooks.start_run(store=outage_uri)
        for i in range(100):
            run.log_metric("m", float(i))
        assert run.flush()
        team = trackhooks.open_store(outage_uri)
        assert len(team.run(run.id).metric("m")) == 100
        private_pg.stop()
        for i in range(100, 200):
            run.log_metric("m", float(i))
        run.flush()  # returns: the spool is durable; the team store is caught up later
        for i in range(200, 300):
            run.log_metric("m", float(i))
        run.flush()
        assert len(trackhooks.open_store(spool_path()).run(run.id).metric("m")) == 300
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:\d+/o_"):
            trackhooks.open_store(outage_uri)
        private_pg.start()
        run.log_metric("m", 300.0)
        run.finish()
    msgs = _team_messages(record)
    assert len(msgs) == 1 and "training goes on" in msgs[0], msgs
    assert private_pg.password not in " ".join(str(w.message) for w in record)

    def caught_up():
        rec = trackhooks.open_store(outage_uri).run(run.id)
        return rec.status == "finished" and rec
    rec = wait_for(caught_up)
    assert rec.metric("m").values == [float(i) for i in range(301)]


def test_start_run_with_the_team_store_down_goes_on_with_the_spool(private_pg, outage_uri):
    private_pg.stop()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with trackhooks.start_run(store=outage_uri, params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.5)
    assert len(_team_messages(record)) == 1
    assert trackhooks.open_store(spool_path()).run(run.id).params == {"lr": 0.1}
    private_pg.start()
    out = cli("sync", "--to", outage_uri, "--store", spool_path(), check=True)
    assert "1 of 1 runs in sync" in out.stdout and private_pg.password not in out.stdout + out.stderr
    rec = trackhooks.open_store(outage_uri).run(run.id)
    assert rec.status == "finished" and rec.metric("loss").values == [0.5]


# ---- bad input ------------------------------------------------------------------------------------


def _bad_uris(private_pg, pg_db):
    return {
        "unreachable port": (f"postgresql://postgres:pw1@127.0.0.1:{free_port()}/x", "127.0.0.1:"),
        "wrong password": (private_pg.url(password="not-the-password"), "authentication failed"),
        "missing database": (with_db(pg_db, "no_such_database_th"), "does not exist"),
        "bad port": ("postgresql://postgres@127.0.0.1:notaport/x", "invalid"),
    }


@pytest.mark.parametrize("case", ["unreachable port", "wrong password", "missing database", "bad port"])
def test_unusable_servers_give_one_clear_error(case, private_pg, pg_db):
    uri, expected = _bad_uris(private_pg, pg_db)[case]
    with pytest.raises(StoreError) as err:
        trackhooks.open_store(uri)
    text = str(err.value)
    assert expected in text and "pw1" not in text and "not-the-password" not in text
    if case != "bad port":
        assert ":" in text.split("team store ")[1].split()[0]  # host:port/db
    out = cli("runs", "--store", uri)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trackhooks: error:") and expected in lines[0], out.stderr
    assert "not-the-password" not in out.stderr and "pw1" not in out.stderr


def test_a_database_that_is_not_a_trackhooks_store(pg_uri):
    s = _schema_of(pg_uri)
    psql(_db_of(pg_uri), f"CREATE TABLE {s}.customers (id int)")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:\d+/.*not a trackhooks store"):
        trackhooks.open_store(pg_uri)
    out = cli("runs", "--store", pg_uri)
    assert out.returncode == 1 and "not a trackhooks store" in out.stderr and "Traceback" not in out.stderr
    # and a writer does not turn it into one: the run stays in the spool, with one warning
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with trackhooks.start_run(store=pg_uri) as run:
            run.log_metric("m", 1.0)
    assert any("not a trackhooks store" in m for m in _team_messages(record))
    assert psql(_db_of(pg_uri), f"SELECT to_regclass('{s}.runs')")[0] == [(None,)]
    assert trackhooks.open_store(spool_path()).run(run.id).metric("m").values == [1.0]


def test_an_empty_database_is_an_empty_store_and_reading_creates_nothing(pg_uri):
    store = trackhooks.open_store(pg_uri)
    assert store.runs() == [] and store.listing() == [] and store.experiments() == []
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    ui = TestClient(create_app(store))
    assert ui.get("/api/runs").json()["runs"] == []
    token = store.change_token()
    assert psql(_db_of(pg_uri), f"SELECT to_regclass('{_schema_of(pg_uri)}.runs')")[0] == [(None,)]
    with trackhooks.start_run(store=pg_uri) as run:
        pass
    assert store.change_token() != token
    assert len(store.runs()) == 1  # the same store object sees the first run once it is there
    assert [r["id"] for r in ui.get("/api/runs").json()["runs"]] == [run.id]  # and so does a UI left open


def test_newer_schema_is_refused_and_older_is_upgraded_in_place(pg_uri, tmp_path):
    with trackhooks.start_run(store=pg_uri, params={"a": 1}) as run:
        run.log_metric("m", 1.0)
    db, s = _db_of(pg_uri), _schema_of(pg_uri)
    # a newer package's schema (a copy of ours plus one file), applied by its writer in place
    n = schema.SCHEMA_VERSION + 1
    newer = tmp_path / "schema"
    shutil.copytree(schema.SCHEMA_DIR, newer)
    (newer / f"{n:03d}.sql").write_text("ALTER TABLE runs ADD COLUMN owner text;\nCREATE TABLE extra (x int);\n")
    import psycopg

    with psycopg.connect(pg_uri.replace("?options=", "?options=")) as conn:
        assert schema.ensure(conn, "here", str(newer)) == n
    assert psql(db, f"SELECT value FROM {s}.meta WHERE key='schema_version'")[0] == [(str(n),)]
    assert psql(db, f"SELECT count(*) FROM {s}.runs WHERE owner IS NULL")[0] == [(1,)]
    # a broken upgrade changes nothing (one transaction)
    (newer / f"{n + 1:03d}.sql").write_text("ALTER TABLE runs ADD COLUMN half text;\nTHIS IS NOT SQL;\n")
    with psycopg.connect(pg_uri) as conn:
        with pytest.raises(psycopg.Error):
            schema.ensure(conn, "here", str(newer))
    assert psql(db, f"SELECT value FROM {s}.meta WHERE key='schema_version'")[0] == [(str(n),)]
    assert psql(db, f"SELECT count(*) FROM information_schema.columns WHERE table_schema='{s}' "
                    "AND column_name='half'")[0] == [(0,)]
    # this package knows the schema before only: it refuses to read or write the newer store
    with pytest.raises(StoreError, match=f"newer trackhooks-postgres .schema {n}"):
        trackhooks.open_store(pg_uri)
    out = cli("show", run.id, "--store", pg_uri)
    assert out.returncode == 1 and f"schema {n}" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_start_run_with_an_unreachable_store_only_warns(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKHOOKS_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "3")
    uri = f"postgresql://postgres:pw1@127.0.0.1:{free_port()}/nowhere"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with trackhooks.start_run(store=uri) as run:
            run.log_metric("m", 1.0)
    msgs = _team_messages(record)
    assert len(msgs) == 1 and "127.0.0.1" in msgs[0] and "pw1" not in msgs[0]
    assert run.store_uri == uri.replace("pw1", "***")
    assert trackhooks.open_store(spool_path()).run(run.id).status == "finished"


# ---- files ------------------------------------------------------------------------------------


def test_files_are_chunked_deduplicated_and_cached(pg_uri, tmp_path, monkeypatch):
    monkeypatch.setattr(replica, "CHUNK_BYTES", 1000)
    data = os.urandom(3500)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    with trackhooks.start_run(store=pg_uri) as a:
        a.log_artifact(f)
    with trackhooks.start_run(store=pg_uri) as b:
        b.log_artifact(f, name="same.bin")
    db, s = _db_of(pg_uri), _schema_of(pg_uri)
    sha = hashlib.sha256(data).hexdigest()
    assert psql(db, f"SELECT size, chunks FROM {s}.files WHERE sha256='{sha}'")[0] == [(3500, 4)]
    assert psql(db, f"SELECT count(*) FROM {s}.file_chunks WHERE sha256='{sha}'")[0] == [(4,)]
    team = trackhooks.open_store(pg_uri)
    art = team.run(b.id).artifact("same.bin")
    path = art.path
    assert path.startswith(str(tmp_path / "cache")) and open(path, "rb").read() == data
    # the cached copy is used afterwards, also by another store object
    psql(db, f"DELETE FROM {s}.file_chunks")
    assert open(trackhooks.open_store(pg_uri).run(a.id).artifact("blob.bin").path, "rb").read() == data


def test_shared_artifact_directory(pg_db, pg_uri, tmp_path):
    shared = tmp_path / "nfs"
    uri = pg_uri + "&artifact_dir=" + str(shared)
    f = tmp_path / "model.txt"
    f.write_text("weights")
    with trackhooks.start_run(store=uri) as run:
        run.log_artifact(f)
    sha = hashlib.sha256(b"weights").hexdigest()
    assert (shared / sha[:2] / sha).read_bytes() == b"weights"
    assert psql(_db_of(pg_uri), f"SELECT count(*) FROM {_schema_of(pg_uri)}.files")[0] == [(0,)]
    art = trackhooks.open_store(uri).run(run.id).artifact("model.txt")
    assert art.path == str(shared / sha[:2] / sha) and art.sha256 == sha


# ---- reading for a team ------------------------------------------------------------------------


def test_a_select_only_role_reads_everything(pg_db, pg_uri, tmp_path):
    with trackhooks.start_run("e", params={"lr": 0.1}, tags={"framework": "x"}, store=pg_uri) as run:
        run.log_metrics({"loss": 0.5})
        f = tmp_path / "a.txt"
        f.write_text("art")
        run.log_artifact(f)
    s = _schema_of(pg_uri)
    role = "th_reader_" + uuid.uuid4().hex[:6]
    db = pg_db.rsplit("/", 1)[1]
    psql(pg_db, f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pw'", f"GRANT CONNECT ON DATABASE {db} TO {role}",
         f"GRANT USAGE ON SCHEMA {s} TO {role}", f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role}",
         f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {role}")
    try:
        uri = schema_uri(pg_db.replace("postgres@", f"{role}:reader-pw@", 1), s)
        store = trackhooks.open_store(uri)
        assert store.uri.startswith(f"postgresql://{role}@")
        rec = store.run(run.id)
        assert rec.params == {"lr": 0.1} and rec.metric("loss").values == [0.5]
        assert open(rec.artifact("a.txt").path).read() == "art" and store.change_token() is not None
        assert [r["id"] for r in store.listing()] == [run.id]
        for args in (("runs",), ("show", run.id), ("compare", run.id, run.id), ("export", run.id)):
            out = cli(*args, "--store", uri)
            assert out.returncode == 0, (args, out.stderr)
            assert run.id[:8] in out.stdout or "0.5" in out.stdout
        report = tmp_path / "r.html"
        out = cli("report", "--store", uri, "-o", str(report))
        assert out.returncode == 0, out.stderr
        assert run.id[:8] in report.read_text()
        from starlette.testclient import TestClient

        from trackhooks.ui.server import create_app

        client = TestClient(create_app(uri))
        got = client.get("/api/runs").json()
        assert [r["id"] for r in got["runs"]] == [run.id]
        assert client.get(f"/api/runs/{run.id}").status_code == 200
        assert client.get(f"/api/runs/{run.id}/artifacts/a.txt").content == b"art"
    finally:
        psql(pg_db, f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {role}",
             f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {role}", f"REVOKE ALL ON SCHEMA {s} FROM {role}",
             f"REVOKE ALL ON DATABASE {db} FROM {role}", f"DROP ROLE {role}")


# ---- passwords --------------------------------------------------------------------------------


SECRET_RUN = """
import sys, os, trackhooks
with trackhooks.start_run("sec", params={"lr": 0.1}) as run:
    run.log_metric("m", 1.0)
print(run.id)
"""


def test_the_password_appears_nowhere(private_pg, tmp_path, monkeypatch):
    pw = private_pg.password
    name = "s_" + uuid.uuid4().hex[:8]
    psql(private_pg.url(), f"CREATE DATABASE {name}")
    uri = private_pg.url(name)
    home = tmp_path / "home"
    env = {"TRACKHOOKS_URI": uri, "TRACKHOOKS_SPOOL": str(tmp_path / "spool"), "TRACKHOOKS_CACHE": str(tmp_path / "c"),
           "TRACKHOOKS_CAPTURE_ENV": "TRACKHOOKS_URI,PGPASSWORD", "PGPASSWORD": pw, "HOME": str(home),
           "TRACKHOOKS_MIRROR_TIMEOUT": "5"}
    outputs = []
    # the URI on the command line too (system info records argv)
    script = tmp_path / "train.py"
    script.write_text(SECRET_RUN)
    p = subprocess.run([sys.executable, str(script), "--store", uri, f"host=127.0.0.1 password={pw}"],
                       capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, check=True)
    outputs += [p.stdout, p.stderr]
    run_id = p.stdout.strip()
    rec = trackhooks.open_store(uri).run(run_id)
    assert rec.system["argv"][2] == uri.replace(pw, "***") and rec.system["env"]["PGPASSWORD"] == "***"
    # a run whose team store is down: the warning names the server, not the password
    private_pg.stop()
    try:
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env={**os.environ, **env}, cwd=tmp_path, check=True)
        outputs += [p.stdout, p.stderr]
        assert "team store" in p.stderr
        for args in (("runs",), ("show", run_id)):
            out = cli(*args, "--store", uri, env=env)
            assert out.returncode == 1
            outputs += [out.stdout, out.stderr]
    finally:
        private_pg.start()
    for args in (("runs",), ("show", run_id), ("export", run_id), ("report", "-o", str(tmp_path / "r.html")),
                 ("sync", "--to", uri, "--store", str(tmp_path / "spool")),
                 ("runs", "--store", private_pg.url(name, password="wrong-" + pw[::-1]))):
        out = cli(*args, env=env)
        outputs += [out.stdout, out.stderr]
    assert run_id[:8] in "".join(outputs)
    for text in outputs:
        assert pw not in text, text
    # every file trackhooks wrote (spool, its cursors, cache, report) and every row of the team store
    written = [f for f in glob.glob(str(tmp_path / "**" / "*"), recursive=True) if os.path.isfile(f)]
    assert any(f.endswith("trackhooks.db") for f in written) and any(f.endswith("r.html") for f in written)
    for f in written:
        if f.endswith(("train.py", "/pw")):
            continue
        with open(f, "rb") as fh:
            assert pw.encode() not in fh.read(), f
    for table in ("runs", "params", "tags", "metric_keys", "checkpoints", "artifacts", "datasets", "media", "meta",
                  "mirror_cursors"):
        rows = psql(private_pg.url(name), f"SELECT row_to_json(t)::text FROM {table} t")[0]
        assert pw not in json.dumps(rows), table
    import sqlite3

    conn = sqlite3.connect(str(tmp_path / "spool" / "trackhooks.db"))
    keys = [r[0] for r in conn.execute("SELECT DISTINCT mirror FROM mirror_cursors")]
    conn.close()
    assert keys == [f"postgresql://postgres@127.0.0.1:{private_pg.port}/{name}"]


def test_sink_and_engine_show_no_password():
    uri = "postgresql://bob:s3cr3t@db.example:6543/runs?sslmode=require&options=-csearch_path%3Dteam"
    sink = replica.PostgresReplica(uri)
    assert sink.cursor_key == "postgresql://bob@db.example:6543/runs?options=-csearch_path=team"
    assert "s3cr3t" not in sink.name and "s3cr3t" not in repr(trackhooks.plugin.redact_uri(uri))
    from trackhooks_postgres.engine import PostgresStore

    assert "s3cr3t" not in repr(PostgresStore(uri))


def test_a_team_store_is_a_source_too(pg_db, pg_uri, tmp_path):
    # `trackhooks sync --store <team store> --to <another one>`: the replication reads any engine
    ids = _fill(pg_uri, tmp_path)
    other = schema_uri(pg_db, "t_" + uuid.uuid4().hex[:10])
    psql(pg_db, f"CREATE SCHEMA {_schema_of(other)}")
    out = cli("sync", "--to", other, "--store", pg_uri, check=True)
    assert f"{len(trackhooks.open_store(pg_uri).runs())} of" in out.stdout
    assert snapshot(trackhooks.open_store(other)) == snapshot(trackhooks.open_store(pg_uri))
    assert "up to date" in cli("sync", "--to", other, "--store", pg_uri, ids["parent"], check=True).stdout


def test_a_slow_team_store_never_holds_up_training(pg_uri, monkeypatch):
    import psycopg

    monkeypatch.setattr(replica, "STATEMENT_TIMEOUT_MS", 500)
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "2")
    with trackhooks.start_run(store=pg_uri) as run:
        run.log_metric("m", 0.0)
        assert run.flush()
        # another session holds the runs table: every replication statement waits, then times out
        blocker = psycopg.connect(_db_of(pg_uri))
        blocker.execute(f"LOCK TABLE {_schema_of(pg_uri)}.metric_keys IN ACCESS EXCLUSIVE MODE")
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for i in range(1, 50):
                run.log_metric("m", float(i))
            run.flush()  # returns: the spool is durable, the team store catches up later
            wait_for(lambda: _team_messages(record))
        assert "timed out" in _team_messages(record)[0]
        assert len(trackhooks.open_store(spool_path()).run(run.id).metric("m")) == 50
        blocker.rollback()
        blocker.close()
    rec = wait_for(lambda: (r := trackhooks.open_store(pg_uri).run(run.id)).status == "finished" and r)
    assert rec.metric("m").values == [float(i) for i in range(50)]


def test_read_sessions_do_not_jit_compile(pg_uri):
    """The read API's correlated subqueries look expensive to the planner: with JIT on, a frame of
    a few thousand runs spends more time compiling than running (engine.py)."""
    with trackhooks.start_run("e", store=pg_uri):
        pass
    store = trackhooks.open_store(pg_uri)
    assert store._rows("SELECT current_setting('jit')") == [("off",)]
