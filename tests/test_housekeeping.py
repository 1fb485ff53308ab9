"""Deleting, archiving, editing and garbage-collecting a store; read-only SQL refusing writes; the
CLI commands; the UI's where filter. Every bad input leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import trackhooks
from trackhooks import AmbiguousRunError, QueryError, RunActiveError, RunNotFoundError, TrackhooksError
from trackhooks.sink import ArtifactEvent, Batch, MediaEvent
from trackhooks.store.sqlite import LocalStoreSink, artifact_path

PY = sys.executable


def dump(store_path: str) -> list[str]:
    """Every row of every table, for "the store is unchanged" checks."""
    conn = sqlite3.connect(os.path.join(store_path, "trackhooks.db"))
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def files(store_path: str) -> set[str]:
    root = os.path.join(store_path, "artifacts")
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


def log_file(run, tmp_path, name: str, content: str) -> str:
    src = tmp_path / f"src-{name}"
    src.write_text(content)
    run.log_artifact(str(src), name=name)
    return hashlib.sha256(content.encode()).hexdigest()


@pytest.fixture
def tree(store_path, tmp_path):
    """parent (with 2 children, one with a grandchild), a sibling run sharing one file, an other run."""
    with trackhooks.start_run("e", name="parent", params={"lr": 0.1}, tags={"t": "1"}) as parent:
        parent.log_metric("loss", 1.0)
        shared = log_file(parent, tmp_path, "shared.txt", "shared content")
        own = log_file(parent, tmp_path, "own.txt", "parent only")
        parent.log_checkpoint(str(tmp_path / "src-own.txt"), step=0)
        with trackhooks.start_run("e", name="child1", parent=parent) as c1:
            c1.log_metric("loss", 2.0)
            with trackhooks.start_run("e", name="grandchild", parent=c1) as g:
                g.log_metric("loss", 3.0)
                child_file = log_file(g, tmp_path, "g.txt", "grandchild file")
        with trackhooks.start_run("e", name="child2", parent=parent) as c2:
            c2.log_params({"depth": 3})
    with trackhooks.start_run("e", name="other", params={"lr": 0.2}) as other:
        other.log_metric("loss", 0.5)
        log_file(other, tmp_path, "shared-too.txt", "shared content")
    from trackhooks import run as _run, writer

    _run._await_system_info()  # the git probe's facts (this checkout is a work tree) land after finish()

    writer.get_writer().flush()
    store = trackhooks.open_store(store_path)
    return store, {"parent": parent.id, "child1": c1.id, "grandchild": g.id, "child2": c2.id, "other": other.id,
                   "shared": shared, "own": own, "child_file": child_file}


def test_delete_removes_the_run_its_children_and_every_row(tree, store_path):
    store, ids = tree
    conn = store._db()
    conn.execute("INSERT INTO mirror_cursors (mirror, run_id, state) VALUES ('m', ?, '{}')", (ids["parent"],))
    conn.execute("INSERT INTO mirror_cursors (mirror, run_id, state) VALUES ('m', ?, '{}')", (ids["other"],))
    deleted = store.delete_runs([ids["parent"]])
    assert deleted[0] == ids["parent"] and set(deleted) == {ids[k] for k in ("parent", "child1", "grandchild",
                                                                               "child2")}
    assert [r.name for r in store.runs(archived=True)] == ["other"]
    gone = json.dumps(deleted)
    for table in ("params", "tags", "metric_keys", "checkpoints", "artifacts", "datasets", "media", "mirror_cursors"):
        left = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))",
                            (gone,)).fetchone()[0]
        assert left == 0, table
    assert conn.execute("SELECT COUNT(*) FROM metric_blocks WHERE key_id NOT IN (SELECT id FROM metric_keys)"
                        ).fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM mirror_cursors").fetchone()[0] == 1
    other = store.run(ids["other"])
    assert other.params == {"lr": 0.2} and other.metric("loss").values == [0.5]
    # the files stay until gc, which keeps the one the other run still references
    assert os.path.exists(artifact_path(store_path, ids["own"]))
    freed = store.gc()
    assert freed == len("parent only") + len("grandchild file") and freed.count == 2
    assert not os.path.exists(artifact_path(store_path, ids["own"]))
    assert not os.path.exists(artifact_path(store_path, ids["child_file"]))
    assert os.path.exists(artifact_path(store_path, ids["shared"]))
    assert open(other.artifacts()[0].path).read() == "shared content"
    assert store.gc() == 0


def test_deleting_twice_is_an_error_or_a_no_op(tree, store_path):
    store, ids = tree
    store.delete_runs(ids["other"])
    before = dump(store_path)
    with pytest.raises(RunNotFoundError, match=ids["other"][:12]):
        store.delete_runs([ids["other"]])
    assert store.delete_runs([ids["other"]], missing_ok=True) == []
    # one unknown id among good ones: nothing at all is deleted
    with pytest.raises(RunNotFoundError):
        store.delete_runs([ids["parent"], "feedbeef"])
    assert dump(store_path) == before


def test_ambiguous_prefix_and_bad_ids_change_nothing(tree, store_path):
    store, ids = tree
    for i in range(12):  # 17 runs: two of them share a first hex digit
        with trackhooks.start_run("e", name=f"extra{i}"):
            pass
    before = dump(store_path)
    with pytest.raises(AmbiguousRunError):
        store.delete_runs([ids["other"], prefix_of_two(store)])
    for bad in ([None], [3], 3, [b"x"]):
        with pytest.raises(TrackhooksError):
            store.delete_runs(bad)
    with pytest.raises(RunNotFoundError):
        store.delete_runs([""])
    assert dump(store_path) == before


def prefix_of_two(store) -> str:
    ids = sorted(r.id for r in store.runs(archived=True))
    for a, b in zip(ids, ids[1:]):
        n = 0
        while a[n] == b[n]:
            n += 1
        if n:
            return a[:n]
    raise AssertionError("no two run ids share a prefix")


def test_deleting_a_live_run_raises_and_changes_nothing(store_path):
    with trackhooks.start_run("e", name="done") as done:
        pass
    store = trackhooks.open_store(store_path)
    with trackhooks.start_run("e", name="live") as live:
        with trackhooks.start_run("e", name="live child", parent=done) as child:
            child.flush()
            live.flush()
            before = dump(store_path)
            with pytest.raises(RunActiveError) as info:
                store.delete_runs([done.id, live.id])
            assert isinstance(info.value, RuntimeError) and live.id[:12] in str(info.value)
            with pytest.raises(RunActiveError, match=child.id[:12]):
                store.delete_runs(done.id)  # its child is alive
            assert dump(store_path) == before
    assert set(store.delete_runs([done.id, live.id])) == {done.id, live.id, child.id}


def test_a_killed_run_can_be_deleted(store_path):
    code = textwrap.dedent(f"""
        import os, trackhooks
        run = trackhooks.start_run("e", name="dead", store={store_path!r})
        run.log_metric("loss", 1.0)
        run.flush()
        print(run.id, flush=True)
        os._exit(0)
    """)
    rid = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    store = trackhooks.open_store(store_path)
    assert store.run(rid).status == "killed"
    assert store.delete_runs(rid) == [rid]


def test_edits_of_a_finished_run(tree, store_path):
    store, ids = tree
    rid = ids["other"]
    store.set_tags(rid, {"reviewed": "yes", "score": 3})
    store.rename(rid[:10], "renamed")
    store.set_note(rid, "# Results\nbetter than *baseline*")
    rec = store.run(rid)
    assert rec.tags == {"reviewed": "yes", "score": "3"} and rec.name == "renamed"
    assert rec.note.startswith("# Results")
    assert [r.name for r in store.runs(where="tags.reviewed = 'yes'")] == ["renamed"]
    store.delete_tags(rid, ["score", "never-set"])
    store.set_note(rid, "")
    rec = store.run(rid)
    assert rec.tags == {"reviewed": "yes"} and rec.note is None
    before = dump(store_path)
    for call in (lambda: store.rename(rid, ""), lambda: store.rename(rid, None), lambda: store.rename(rid, "a\x00b"),
                 lambda: store.set_tags(rid, ["a"]), lambda: store.set_tags(rid, {"": "x"}),
                 lambda: store.set_tags(rid, {3: "x"}), lambda: store.set_note(rid, 3),
                 lambda: store.set_tags("nope", {"a": "b"}), lambda: store.rename("nope", "x")):
        with pytest.raises(TrackhooksError):
            call()
    assert dump(store_path) == before


def test_archive(tree):
    store, ids = tree
    assert set(store.archive_runs([ids["child1"]])) == {ids["child1"], ids["grandchild"]}
    assert [r.name for r in store.runs()] == ["parent", "child2", "other"]
    assert store.run(ids["grandchild"]).archived
    assert {r.name for r in store.run(ids["parent"]).children()} == {"child1", "child2"}  # children() shows all
    assert len(store.runs(archived=True)) == 5
    with pytest.raises(RunNotFoundError):
        store.archive_runs(["nope"])
    store.unarchive_runs([ids["child1"]])
    assert len(store.runs()) == 5


# ---- gc ---------------------------------------------------------------------------------------------

def test_gc_dry_run_and_media(tree, store_path):
    store, ids = tree
    sink = LocalStoreSink(store_path)
    png = b"\x89PNG fake image bytes"
    sha = hashlib.sha256(png).hexdigest()
    sink.write(Batch(media=[MediaEvent(ids["other"], "img", "image", 0, None, time.time(), {"caption": None},
                                       file=png, sha256=sha, ext="png", width=1, height=1)]))
    sink.close()
    orphan = artifact_path(store_path, "f" * 64)
    os.makedirs(os.path.dirname(orphan), exist_ok=True)
    with open(orphan, "wb") as f:
        f.write(b"12345")
    before_files = files(store_path)
    plan = store.gc(dry_run=True)
    assert plan == 5 and plan.files == [orphan] and files(store_path) == before_files
    assert store.gc() == 5 and os.path.exists(artifact_path(store_path, sha))  # the media file is referenced
    store.delete_runs(ids["other"])
    assert store.gc() == len(png)  # media rows went with the run; "shared" is still the parent's
    assert os.path.exists(artifact_path(store_path, ids["shared"]))


def test_gc_keeps_a_file_whose_row_commits_after_the_scan(store_path, tmp_path):
    """The race: a writer copies a file into artifacts/ and inserts its row in one transaction; gc
    sees the file before the row. The writer here is the real LocalStoreSink, run from gc's hook
    between the unlocked scan and the locked re-check, re-logging content that gc found orphaned
    (the writer then skips the copy: the file is already there)."""
    with trackhooks.start_run("e", name="old") as old:
        sha = log_file(old, tmp_path, "model.bin", "weights")
    store = trackhooks.open_store(store_path)
    store.delete_runs(old.id)
    with trackhooks.start_run("e", name="new") as new:
        pass
    path = artifact_path(store_path, sha)
    sink = LocalStoreSink(store_path)
    seen = []

    def writer_commits_now(chunk):
        seen.append([p for p, _, _ in chunk])
        sink.write(Batch(artifacts=[ArtifactEvent(new.id, "model.bin", str(tmp_path / "src-model.bin"), sha, 7,
                                                  time.time())]))

    store._gc_before_lock = writer_commits_now
    try:
        assert store.gc() == 0
    finally:
        del store._gc_before_lock
        sink.close()
    assert seen == [[path]]  # the scan did see it as unreferenced
    assert open(store.run(new.id).artifacts()[0].path).read() == "weights"
    assert store.gc() == 0


def test_gc_removes_a_file_whose_writer_rolled_back(store_path, tmp_path):
    """A copy whose transaction never commits (the writer crashed) is garbage."""
    with trackhooks.start_run("e") as run:
        pass
    store = trackhooks.open_store(store_path)
    conn = sqlite3.connect(os.path.join(store_path, "trackhooks.db"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # what LocalStoreSink.write does: lock, copy, insert, commit
    path = artifact_path(store_path, "a" * 64)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("partial")
    conn.execute("INSERT INTO artifacts (run_id, name, sha256, size, time) VALUES (?, 'x', ?, 7, 0)",
                 (run.id, "a" * 64))
    store._gc_before_lock = lambda chunk: conn.execute("ROLLBACK")  # the writer gives up after gc's scan
    try:
        assert store.gc() == 7
    finally:
        del store._gc_before_lock
        conn.close()
    assert not os.path.exists(path)


def test_gc_while_another_process_logs_artifacts(store_path, tmp_path):
    """Stress: a process logs 200 distinct files while this one runs gc in a loop; afterwards every
    artifact record still has its file."""
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    code = textwrap.dedent(f"""
        import os, trackhooks
        with trackhooks.start_run("e", name="writer", store={store_path!r}) as run:
            for i in range(200):
                p = os.path.join({str(src_dir)!r}, f"f{{i}}.txt")
                with open(p, "w") as f:
                    f.write(f"content {{i}}")
                run.log_artifact(p)
                if i % 20 == 0:
                    run.flush()
    """)
    with trackhooks.start_run("e", name="first"):
        pass
    store = trackhooks.open_store(store_path)
    proc = subprocess.Popen([PY, "-c", code])
    rounds = 0
    while proc.poll() is None or rounds < 3:
        store.gc()
        rounds += 1
    assert proc.wait(120) == 0
    rec = store.runs(where="name = 'writer'")[0]
    arts = rec.artifacts()
    assert len(arts) == 200
    missing = [a.name for a in arts if not os.path.exists(a.path)]
    assert missing == []
    assert store.gc() == 0


# ---- read-only SQL ----------------------------------------------------------------------------------

def test_query_views(tree):
    store, ids = tree
    r = store.query("SELECT r.name, m.last, p.number FROM runs r JOIN metrics m ON m.run_id = r.id AND m.key = 'loss' "
                    "LEFT JOIN params p ON p.run_id = r.id AND p.key = 'lr' WHERE r.parent_id IS NULL ORDER BY r.name")
    assert r.columns == ["name", "last", "number"]
    assert list(r) == [("other", 0.5, 0.2), ("parent", 1.0, 0.1)] and not r.truncated
    assert store.query("SELECT COUNT(*) AS n FROM runs").dicts() == [{"n": 5}]
    for view, cols in (("runs", "id, name, experiment, status, parent_id, start_time, end_time, duration, archived"),
                       ("params", "run_id, key, value"), ("tags", "run_id, key, value"),
                       ("metrics", "run_id, key, count, last, min, max, last_step"),
                       ("checkpoints", "run_id, path, step, epoch, best"), ("artifacts", "run_id, name, sha256, size"),
                       ("datasets", "run_id, name, context, digest")):
        assert store.query(f"SELECT {cols} FROM {view} LIMIT 1").columns == [c.strip() for c in cols.split(",")]
    assert store.query("WITH t AS (SELECT name FROM runs) SELECT COUNT(*) FROM t")[0][0] == 5
    lim = store.query("SELECT name FROM runs", limit=2)
    assert len(lim) == 2 and lim.truncated
    assert store.query("SELECT 'it''s' AS x;")[0] == ("it's",)


@pytest.mark.parametrize("sql, words", [
    ("DELETE FROM runs", "read-only"),
    ("UPDATE runs SET name = 'x'", "read-only"),
    ("INSERT INTO tags (run_id, key, value) VALUES ('a', 'b', 'c')", "read-only"),
    ("DROP VIEW runs", "read-only"),
    ("DROP TABLE main.runs", "read-only"),
    ("CREATE TABLE x (a)", "read-only"),
    ("SELECT 1; DELETE FROM runs", "one SQL statement"),
    ("SELECT * FROM runs; SELECT 1", "one SQL statement"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA"),
    ("SELECT * FROM pragma_table_info('runs')", "read-only"),
    ("ATTACH DATABASE '/tmp/th-evil.db' AS evil", "ATTACH"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("SELECT * FROM metric_blocks", "metric_blocks"),
    ("SELECT * FROM main.mirror_cursors", "mirror_cursors"),
    ("SELECT * FROM sqlite_master", "sqlite_master"),
    ("VACUUM", "read-only"),
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c", "time limit"),
    ("SELECT nonsense FROM runs", "no such column"),
    ("", "non-empty"),
    ("' or 1=1; drop table runs --", "unrecognized token"),
])
def test_query_refuses_and_changes_nothing(tree, store_path, sql, words):
    store, _ = tree
    before = dump(store_path)
    with pytest.raises(QueryError, match=words) as info:
        store.query(sql, timeout_s=0.5)
    assert isinstance(info.value, ValueError)
    assert dump(store_path) == before
    assert not os.path.exists("/tmp/th-evil.db") or "ATTACH" not in sql


# ---- CLI --------------------------------------------------------------------------------------------

def cli(*args, check=True):
    env = {k: v for k, v in os.environ.items() if k != "TRACKHOOKS_DEBUG"}
    p = subprocess.run([PY, "-m", "trackhooks", *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_cli_runs_where_sort_limit_archived(tree, store_path):
    store, ids = tree
    out = json.loads(cli("runs", "--where", "params.lr > 0.05", "--sort=-params.lr", "--json").stdout)
    assert [r["name"] for r in out] == ["other", "parent"]
    out = json.loads(cli("runs", "--sort", "metrics.loss", "--limit", "2", "--json").stdout)
    assert [r["name"] for r in out] == ["other", "parent"]
    cli("archive", ids["other"][:12])
    assert [r["name"] for r in json.loads(cli("runs", "--json").stdout)] == ["parent", "child1", "grandchild",
                                                                             "child2"]
    assert len(json.loads(cli("runs", "--archived", "--json").stdout)) == 5
    assert "(archived)" in cli("runs", "--archived").stdout
    assert "archived runs hidden" in cli("runs", "--where", "name = 'other'").stderr
    cli("unarchive", "--where", "name = 'other'")
    assert len(json.loads(cli("runs", "--json").stdout)) == 5
    p = cli("runs", "--where", "params.lr <", check=False)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[0].startswith("trackhooks: error: missing a value") and lines[1] == "  params.lr <"
    assert lines[2] == "  " + " " * 11 + "^" and lines[3].startswith("expected ")


def test_cli_rm_needs_yes(tree, store_path):
    store, ids = tree
    before = dump(store_path)
    p = cli("rm", ids["child1"][:12], check=False)
    assert p.returncode == 1 and "--yes" in p.stderr and "would delete 2 runs" in p.stderr
    assert "child1" in p.stdout and "grandchild" in p.stdout
    assert dump(store_path) == before
    p = cli("rm", "--where", "name = 'nobody'", "--yes", check=False)
    assert p.returncode == 1 and "no run matches" in p.stderr
    p = cli("rm", "nope", "--yes", check=False)
    assert p.returncode == 1 and "no run" in p.stderr
    assert dump(store_path) == before
    out = json.loads(cli("rm", "--where", "name = 'child1'", "--yes", "--json").stdout)
    assert set(out["deleted"]) == {ids["child1"], ids["grandchild"]}
    p = cli("rm", ids["child1"], "--yes", check=False)  # twice: an error naming the run
    assert p.returncode == 1 and ids["child1"] in p.stderr
    out = json.loads(cli("gc", "--dry-run", "--json").stdout)
    assert out == {"dry_run": True, "files": 1, "bytes": len("grandchild file")}
    assert "removed 1 unreferenced file" in cli("gc").stdout
    assert json.loads(cli("gc", "--json").stdout)["files"] == 0


def test_cli_tag_rename_note_query(tree, store_path):
    store, ids = tree
    rid = ids["other"]
    cli("tag", rid[:12], "reviewed=yes", "stage=prod")
    cli("rename", rid[:12], "best model")
    cli("note", rid[:12], "kept for the paper")
    rec = store.run(rid)
    assert rec.tags["stage"] == "prod" and rec.name == "best model" and rec.note == "kept for the paper"
    cli("tag", rid[:12], "--delete", "stage")
    assert "stage" not in store.run(rid).tags
    p = cli("tag", rid[:12], "novalue", check=False)
    assert p.returncode == 1 and "KEY=VALUE" in p.stderr
    out = json.loads(cli("query", "SELECT name, archived FROM runs WHERE parent_id IS NULL ORDER BY name",
                         "--json").stdout)
    assert out == {"columns": ["name", "archived"], "rows": [["best model", 0], ["parent", 0]], "truncated": False}
    assert "best model" in cli("query", "SELECT name FROM runs").stdout
    before = dump(store_path)
    p = cli("query", "DELETE FROM runs", check=False)
    assert p.returncode == 1 and "read-only" in p.stderr
    assert dump(store_path) == before


# ---- UI ---------------------------------------------------------------------------------------------

def test_ui_where_filter_and_archived(tree):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    store, ids = tree
    with TestClient(create_app(store)) as c:  # one app thread, as under uvicorn
        d = c.get("/api/runs", params={"where": "params.lr > 0.15"}).json()
        assert [r["name"] for r in d["runs"]] == ["other"] and d["total"] == 1
        bad = c.get("/api/runs", params={"where": "params.lr >"})
        assert bad.status_code == 400 and "^" in bad.json()["error"] and "params.lr >" in bad.json()["error"]
        cli("archive", ids["other"])  # another process archives while the UI runs
        d = c.get("/api/runs").json()
        assert "other" not in [r["name"] for r in d["runs"]] and d["archived_hidden"] == 1
        d = c.get("/api/runs", params={"archived": "1"}).json()
        assert "other" in [r["name"] for r in d["runs"]] and d["archived_hidden"] == 0
