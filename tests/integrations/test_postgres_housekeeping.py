"""Housekeeping (delete/archive/tags/rename/note/gc) and read-only SQL on the PostgreSQL engine,
against a real server: the same semantics and errors as the SQLite engine (tests/test_housekeeping.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("psycopg")

import trackhooks  # noqa: E402
from trackhooks import QueryError, RunActiveError, RunNotFoundError, StoreError  # noqa: E402

from tests.pgserver import psql  # noqa: E402

TRACKHOOKS = [sys.executable, "-m", "trackhooks"]


def _schema_of(uri: str) -> str:
    return uri.rsplit("search_path%3D", 1)[1]


def _db_of(uri: str) -> str:
    return uri.split("?")[0]


def _write(store: str, tmp_path) -> dict:
    (tmp_path / "shared.bin").write_bytes(b"shared" * 1000)
    (tmp_path / "own.bin").write_bytes(b"own-of-b" * 1000)
    ids = {}
    with trackhooks.start_run("exp", name="parent", params={"lr": 0.1, "opt": "adam"}, tags={"team": "v"},
                              store=store) as p:
        p.log_metrics({"loss": 0.5}, step=0)
        p.log_metrics({"loss": 0.25}, step=1)
        p.log_artifact(tmp_path / "shared.bin")
        ids["parent"] = p.id
        with trackhooks.start_run("exp", name="child", params={"lr": 0.01}, store=store, parent=p) as c:
            c.log_metric("loss", 0.3, step=0)
            ids["child"] = c.id
    with trackhooks.start_run("exp", name="b", params={"lr": "1e-3", "opt": "sgd"}, store=store) as b:
        b.log_metric("acc", 0.9, step=3)
        b.log_artifact(tmp_path / "shared.bin")
        b.log_artifact(tmp_path / "own.bin")
        ids["b"] = b.id
    return ids


@pytest.fixture
def team(pg_uri, tmp_path):
    ids = _write(pg_uri, tmp_path)
    store = trackhooks.open_store(pg_uri)
    yield store, ids, pg_uri
    store.close()


def count(uri: str, sql: str) -> int:
    return psql(_db_of(uri), f"SET search_path TO {_schema_of(uri)}", sql)[-1][0][0]


def test_delete_removes_the_run_its_children_and_every_row(team):
    store, ids, uri = team
    store._cursor_commit("mlflow:x", ids["child"], "{}", -1, 0.0)
    deleted = store.delete_runs(ids["parent"][:10])
    assert deleted == [ids["parent"], ids["child"]]  # parents first
    assert [r.name for r in store.runs()] == ["b"]
    for table in ("params", "tags", "metric_keys", "artifacts", "checkpoints", "datasets", "media", "mirror_cursors"):
        assert count(uri, f"SELECT count(*) FROM {table} WHERE run_id IN ('{ids['parent']}', '{ids['child']}')") == 0
    assert count(uri, "SELECT count(*) FROM metric_blocks") == count(uri, "SELECT count(*) FROM metric_blocks b "
                                                                        "JOIN metric_keys k ON k.id = b.key_id")
    with pytest.raises(RunNotFoundError):  # deleting twice is an error ...
        store.delete_runs(ids["parent"])
    assert store.delete_runs([ids["parent"]], missing_ok=True) == []  # ... or a documented no-op


def test_an_unknown_id_deletes_nothing(team):
    store, ids, uri = team
    with pytest.raises(RunNotFoundError):
        store.delete_runs([ids["b"], "no-such-run"])
    assert len(store.runs()) == 3


def test_a_live_run_cannot_be_deleted(team):
    store, ids, uri = team
    # the run as a live writer on this host has it: stored 'running', our pid and its start time
    from trackhooks.plugin import Store  # noqa: F401 - the engine is loaded
    from trackhooks.store.status import process_start_time

    psql(_db_of(uri), f"UPDATE {_schema_of(uri)}.runs SET status='running', end_time=NULL, host='{socket.gethostname()}', "
                      f"pid={os.getpid()}, pid_start={process_start_time(os.getpid()) or 'NULL'} "
                      f"WHERE id='{ids['child']}'")
    assert store.run(ids["child"]).status == "running"
    with pytest.raises(RunActiveError, match=ids["child"][:12]):
        store.delete_runs(ids["parent"])  # the child is alive: nothing is deleted
    assert len(store.runs()) == 3


def test_archive_tags_rename_note(team):
    store, ids, uri = team
    assert store.archive_runs(ids["parent"]) == [ids["parent"], ids["child"]]
    assert [r.name for r in store.runs()] == ["b"]
    assert {r.name for r in store.runs(archived="only")} == {"parent", "child"}
    assert store.archive_runs(ids["parent"]) == [ids["parent"], ids["child"]]  # again: a no-op
    store.unarchive_runs(ids["parent"])
    assert len(store.runs()) == 3
    store.set_tags(ids["b"], {"team": "nlp", "n": 3})
    store.set_tags(ids["b"], {"team": "audio"})
    store.delete_tags(ids["b"], ["n", "absent"])
    assert store.run(ids["b"]).tags == {"team": "audio"}
    store.rename(ids["b"], "b2")
    store.set_note(ids["b"], "# better")
    rec = store.run(ids["b"])
    assert (rec.name, rec.note) == ("b2", "# better")
    store.set_note(ids["b"], "")
    assert store.run(ids["b"]).note is None
    with pytest.raises(trackhooks.InvalidValueError):
        store.rename(ids["b"], " ")
    with pytest.raises(trackhooks.InvalidValueError):
        store.set_tags(ids["b"], "team=x")


def test_gc_frees_file_chunks_only_when_no_run_references_them(team):
    store, ids, uri = team
    assert store.gc() == 0  # everything is referenced
    assert count(uri, "SELECT count(*) FROM files") == 2
    store.delete_runs(ids["b"])
    dry = store.gc(dry_run=True)
    assert dry.count == 1 and int(dry) == len(b"own-of-b" * 1000)
    assert count(uri, "SELECT count(*) FROM file_chunks") == 2  # dry run changed nothing
    freed = store.gc()
    assert freed.count == 1 and int(freed) == len(b"own-of-b" * 1000)
    assert count(uri, "SELECT count(*) FROM files") == 1  # the shared one: the parent still has it
    assert count(uri, "SELECT count(*) FROM file_chunks") == 1
    [art] = store.run(ids["parent"]).artifacts()
    assert open(art.path, "rb").read() == b"shared" * 1000
    store.delete_runs(ids["parent"])
    assert store.gc().count == 1
    assert count(uri, "SELECT count(*) FROM file_chunks") == 0


def test_gc_waits_for_a_replication_round_and_keeps_its_file(team, tmp_path):
    """The race: a writer's round has checked the file is there (or stored it) but not committed
    the artifact row yet. gc must wait for it (the lock) and then see the row."""
    import psycopg

    store, ids, uri = team
    store.delete_runs(ids["b"])  # own.bin is now unreferenced ...
    from trackhooks_postgres.housekeeping import GC_LOCK

    from trackhooks_postgres import conninfo
    w = conninfo.connect(conninfo.parse(uri), autocommit=False)
    try:
        # ... and a replicating writer is inserting a new run's record of it, as a round does
        w.execute("SELECT nextval('changes'), pg_advisory_xact_lock_shared(%s)", (GC_LOCK,))
        w.execute("INSERT INTO artifacts (run_id, name, sha256, size, time) SELECT 'newrun', 'own.bin', sha256, size, 0 "
                  "FROM files WHERE sha256 NOT IN (SELECT sha256 FROM artifacts)")
        import threading
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("gc", trackhooks.open_store(uri).gc()))
        t.start()
        t.join(1.0)
        assert t.is_alive()  # gc waits for the round
        w.commit()
        t.join(60)
        assert out["gc"].count == 0  # and then sees the new reference
    finally:
        w.close()
    assert count(uri, "SELECT count(*) FROM files") == 2
    assert isinstance(psycopg, object)


def test_read_only_queries_equal_sqlite_and_writes_are_refused(team, tmp_path):
    store, ids, uri = team
    local = tmp_path / "local"
    _write(str(local), tmp_path / "..")
    lstore = trackhooks.open_store(str(local))
    queries = [
        "SELECT name, experiment, status, archived, note FROM runs ORDER BY name",
        "SELECT r.name, p.key, p.value, p.number FROM params p JOIN runs r ON r.id = p.run_id ORDER BY 1, 2",
        "SELECT r.name, m.key, m.count, m.last, m.min, m.max, m.last_step FROM metrics m JOIN runs r ON r.id = m.run_id "
        "ORDER BY 1, 2",
        "SELECT r.name, a.name, a.sha256, a.size FROM artifacts a JOIN runs r ON r.id = a.run_id ORDER BY 1, 2",
        "SELECT count(*) AS n FROM runs WHERE parent_id IS NOT NULL",
        "SELECT 'it''s' AS x, 'a%' AS y;",
    ]
    for q in queries:
        pg, sq = store.query(q), lstore.query(q)
        assert pg.columns == sq.columns, q
        assert [tuple(r) for r in pg] == [tuple(r) for r in sq], q
    lim = store.query("SELECT name FROM runs ORDER BY name", limit=2)
    assert len(lim) == 2 and lim.truncated
    before = [count(uri, f"SELECT count(*) FROM {t}") for t in ("runs", "params", "tags", "files")]
    for sql, words in [
        ("DELETE FROM runs", "read-only"),
        ("UPDATE runs SET name = 'x'", "read-only"),
        ("INSERT INTO tags (run_id, key, value) VALUES ('a', 'b', 'c')", "read-only"),
        ("DROP VIEW runs", "read-only"),
        ("CREATE TABLE x (a int)", "read-only"),
        ("WITH d AS (DELETE FROM runs RETURNING id) SELECT * FROM d", "read-only"),
        ("SELECT 1; DELETE FROM runs", "one SQL statement"),
        ("SELECT lo_export(1, '/tmp/x')", "lo_export"),
        ("SELECT * INTO evil FROM runs", "read-only"),
        ("SELECT * FROM metric_blocks", "metric_blocks"),
        ("SELECT count(*) FROM generate_series(1, 100000000000)", "time limit"),
        ("SELECT nonsense FROM runs", "nonsense"),
        ("", "non-empty"),
        ("' or 1=1; drop table runs --", "SQL error|one SQL statement"),
    ]:
        with pytest.raises(QueryError, match=words):
            store.query(sql, timeout_s=0.5)
    after = [count(uri, f"SELECT count(*) FROM {t}") for t in ("runs", "params", "tags", "files")]
    assert after == before
    assert store.query("SELECT count(*) FROM runs")[0][0] == 3  # the connection is usable afterwards


def test_a_select_only_role_reads_and_queries_but_cannot_change(team, pg_db):
    store, ids, uri = team
    role = "ro_" + _schema_of(uri)
    s = _schema_of(uri)
    psql(pg_db, f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role} LOGIN", f"GRANT USAGE ON SCHEMA {s} TO {role}",
         f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role}", f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {role}")
    scheme, rest = uri.split("://", 1)
    ro_uri = f"{scheme}://{role}@{rest.split('@', 1)[-1]}"
    try:
        ro = trackhooks.open_store(ro_uri)
        assert ro.query("SELECT count(*) FROM runs")[0][0] == 3
        with pytest.raises(StoreError, match="nothing was changed"):
            ro.rename(ids["b"], "x")
        with pytest.raises(StoreError, match="nothing was changed"):
            ro.delete_runs(ids["b"])
        ro.close()
    finally:
        psql(pg_db, f"REASSIGN OWNED BY {role} TO postgres", f"DROP OWNED BY {role}", f"DROP ROLE {role}")
    assert store.run(ids["b"]).name == "b"


def test_cli_housekeeping_on_a_team_store(team):
    store, ids, uri = team

    def cli(*args):
        env = {k: v for k, v in os.environ.items() if k != "TRACKHOOKS_DEBUG"}
        return subprocess.run([*TRACKHOOKS, *args], capture_output=True, text=True, env=env, timeout=120)

    out = cli("tag", ids["b"][:8], "owner=ana", "--store", uri)
    assert out.returncode == 0, out.stderr
    assert cli("rename", ids["b"][:8], "renamed", "--store", uri).returncode == 0
    assert cli("note", ids["b"][:8], "hello", "--store", uri).returncode == 0
    out = cli("query", "SELECT name, note FROM runs WHERE id LIKE 'x%' OR name = 'renamed'", "--json", "--store", uri)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == [["renamed", "hello"]]
    assert cli("archive", ids["b"][:8], "--store", uri).returncode == 0
    assert store.run(ids["b"]).archived
    assert cli("unarchive", ids["b"][:8], "--store", uri).returncode == 0
    out = cli("rm", ids["b"][:8], "--store", uri)
    assert out.returncode == 1 and "--yes" in out.stderr  # lists, deletes nothing
    assert cli("rm", ids["b"][:8], "--yes", "--store", uri).returncode == 0
    out = cli("gc", "--dry-run", "--store", uri)
    assert out.returncode == 0 and "would remove 1 unreferenced file" in out.stdout, out.stdout + out.stderr
    out = cli("gc", "--store", uri)
    assert out.returncode == 0 and "removed 1 unreferenced file" in out.stdout
    out = cli("query", "DELETE FROM runs", "--store", uri)
    assert out.returncode == 1 and "read-only" in out.stderr and "Traceback" not in out.stderr
    assert {r.name for r in store.runs()} == {"parent", "child"}
    assert store.run(ids["parent"]).tags == {"team": "v"}


def test_a_deleted_run_is_not_recreated_by_a_later_sync_of_its_spool(team):
    from trackhooks.plugin import spool_path
    from trackhooks.sync import sync

    store, ids, uri = team
    spool = trackhooks.open_store(spool_path())
    assert {r.name for r in spool.runs()} == {"parent", "child", "b"}  # the spool still has them all
    store.delete_runs(ids["b"])
    assert count(uri, f"SELECT count(*) FROM deleted_runs WHERE id = '{ids['b']}'") == 1
    with pytest.warns(RuntimeWarning, match="was deleted from the team store"):
        sync(spool, uri)
    assert {r.name for r in store.runs()} == {"parent", "child"}
    assert count(uri, f"SELECT count(*) FROM params WHERE run_id = '{ids['b']}'") == 0
    # restoring on purpose: remove the tombstone, sync again
    psql(_db_of(uri), f"DELETE FROM {_schema_of(uri)}.deleted_runs WHERE id = '{ids['b']}'")
    sync(spool, uri)
    assert store.run(ids["b"]).params == {"lr": "1e-3", "opt": "sgd"}


def test_an_empty_team_store_answers_queries_and_housekeeping_like_an_empty_local_one(pg_uri, tmp_path):
    store = trackhooks.open_store(pg_uri)
    (tmp_path / "empty").mkdir()
    local = trackhooks.open_store(str(tmp_path / "empty"))
    for q in ("SELECT count(*) AS n FROM runs", "SELECT key, value FROM params", "SELECT * FROM metrics"):
        pg, sq = store.query(q), local.query(q)
        assert (pg.columns, list(pg)) == (sq.columns, list(sq)), q
    assert store.gc() == 0
    with pytest.raises(RunNotFoundError):
        store.delete_runs("abc")
    assert store.delete_runs(["abc"], missing_ok=True) == []
    # and it created nothing: the database is still empty (the first writer creates the schema)
    assert psql(_db_of(pg_uri), "SELECT count(*) FROM information_schema.tables "
                                f"WHERE table_schema = '{_schema_of(pg_uri)}'")[0] == [(0,)]
