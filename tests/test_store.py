"""The store package: the engine boundary, schema upgrades, notes and media records (tests taking
``any_store`` run on both engines: a local store and a team store on PostgreSQL)."""

import json
import os
import sqlite3
import time

import pytest

import trackhooks
from trackhooks.sink import Batch, MediaEvent
from trackhooks.store import redact_uri
from trackhooks.store.sqlite import SCHEMA_VERSION, LocalStoreSink, SQLiteStore


def test_note_round_trip_and_replace_after_finish(any_store):
    with trackhooks.start_run() as run:
        run.set_note("# first\nwhy this run")
        run.set_note("**second** note")
    rec = trackhooks.open_store().run(run.id)
    assert rec.note == "**second** note" and rec.archived is False
    run.set_note("after the run")  # a finished run can still be described
    run.flush()
    assert trackhooks.open_store().run(run.id).note == "after the run"


def test_bad_note_is_rejected_naming_the_run(any_store):
    with trackhooks.start_run() as run:
        with pytest.raises(trackhooks.InvalidValueError, match=run.id[:8]):
            run.set_note(42)
        with pytest.raises(ValueError, match="100000"):
            run.set_note("x" * 100_001)
    assert trackhooks.open_store().run(run.id).note is None


def test_media_records_round_trip_through_the_sink(store_path):
    with trackhooks.start_run() as run:
        pass
    png = b"\x89PNG\r\n\x1a\nnot-really"
    import hashlib

    sha = hashlib.sha256(png).hexdigest()
    sink = LocalStoreSink(store_path)
    now = time.time()
    sink.write(Batch(media=[
        MediaEvent(run.id, "samples", "image", 0, None, now, {"caption": "a"}, png, sha, "png", 2, 3),
        MediaEvent(run.id, "samples", "image", 1, 0, now, {"caption": "b"}, png, sha, "png", 2, 3),
        MediaEvent(run.id, "w", "histogram", 0, None, now, {"edges": [0, 1], "counts": [5], "min": 0, "max": 1,
                                                            "count": 5}),
    ]))
    sink.close()
    rec = trackhooks.open_store().run(run.id)
    assert rec.media_keys() == ["samples", "w"]
    imgs = rec.media("samples")
    assert [m.step for m in imgs] == [0, 1] and imgs[1].epoch == 0 and imgs[0].data == {"caption": "a"}
    assert imgs[0].path == imgs[1].path and open(imgs[0].path, "rb").read() == png  # stored once
    assert (imgs[0].width, imgs[0].height, imgs[0].kind) == (2, 3, "image")
    h = rec.media("w")[0]
    assert h.path is None and h.data["counts"] == [5]
    assert rec.media("nothing") == []


def test_version_1_store_is_upgraded_in_place(store_path):
    with trackhooks.start_run(params={"lr": 0.1}) as run:
        run.log_metric("m", 1.0)
    db = os.path.join(store_path, "trackhooks.db")
    conn = sqlite3.connect(db)
    conn.executescript("ALTER TABLE runs DROP COLUMN note; ALTER TABLE runs DROP COLUMN archived; DROP TABLE media;"
                       "UPDATE meta SET value='1' WHERE key='schema_version';")
    conn.close()
    rec = trackhooks.open_store().run(run.id)  # a reader upgrades it
    assert rec.note is None and rec.params == {"lr": 0.1} and rec.metric("m").values == [1.0]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()
    with trackhooks.start_run() as run2:  # and writers go on
        run2.set_note("n")
    assert trackhooks.open_store().run(run2.id).note == "n"


def test_every_store_is_a_store_and_store_dispatches(any_store):
    with trackhooks.start_run():
        pass
    store = trackhooks.Store(any_store)
    assert isinstance(store, trackhooks.Store)
    if any_store.startswith("postgresql://"):
        assert store.engine == "postgres" and type(store).__name__ == "PostgresStore"
        assert store.uri.startswith("postgresql://postgres@") and "search_path" in store.uri
    else:
        assert isinstance(store, SQLiteStore)
        assert store.engine == "sqlite" and store.uri == os.path.abspath(any_store)
    assert len(store.runs()) == 1


def test_bulk_listing_methods(any_store):
    ids = []
    for i in range(3):
        with trackhooks.start_run(params={"i": i}, tags={"framework": "f" if i else "g"}) as run:
            run.log_metrics({"loss": 1.0 / (i + 1)})
        ids.append(run.id)
    store = trackhooks.open_store()
    rows = store.listing()
    assert [r["id"] for r in rows] == ids and all(r["status"] == "finished" for r in rows)
    assert store.tag_values("framework") == {ids[0]: "g", ids[1]: "f", ids[2]: "f"}
    assert store.param_values("i") == {ids[0]: 0, ids[1]: 1, ids[2]: 2}
    assert store.metric_last_values("loss")[ids[1]] == 0.5
    assert store.metric_run_counts() == {"loss": 3}
    assert store.params_of(ids[:2]) == {ids[0]: {"i": 0}, ids[1]: {"i": 1}}
    assert store.metric_summaries_of([ids[2]])[ids[2]]["loss"]["count"] == 1
    live = store.live(ids)
    assert live[ids[0]]["status"] == "finished" and live[ids[0]]["counts"] == {"loss": 1}
    token = store.change_token()
    with trackhooks.start_run():
        pass
    assert store.change_token() != token


def test_runs_lists_many_runs_with_params_in_bulk(any_store):
    # more runs than one IN (...) list holds: params and tags come from the subquery form
    for i in range(520):
        trackhooks.start_run(params={"i": i}, tags={"t": str(i)}).finish()
    recs = trackhooks.open_store().runs()
    assert len(recs) == 520 and [r.params["i"] for r in recs] == list(range(520))
    assert recs[-1].tags == {"t": "519"}


@pytest.mark.parametrize("uri, shown", [
    ("postgresql://bob:s3cret@db:5432/runs", "postgresql://bob:***@db:5432/runs"),
    ("postgres://bob:@db/runs", "postgres://bob:***@db/runs"),
    ("postgresql://db/runs?password=s3cret&sslmode=require", "postgresql://db/runs?password=***&sslmode=require"),
    ("host=db password='s 3' dbname=x", "host=db password=*** dbname=x"),
    ("postgresql://db/runs", "postgresql://db/runs"),
    ("/a/path:with:colons", "/a/path:with:colons"),
])
def test_redact_uri(uri, shown):
    assert redact_uri(uri) == shown


_KEEPS_CONNECTION = r"""
import os, sys, time
from trackhooks.sink import RunStart
from trackhooks.store.sqlite import LocalStoreSink, SQLiteStore, init_store

path = sys.argv[1]
wal = os.path.join(path, "trackhooks.db-wal")
init_store(path)
assert not os.path.exists(wal), "init_store left a connection open"
sink = LocalStoreSink(path)
os.link(wal, wal + ".probe")  # holds the inode: a re-created WAL cannot come back with its number
assert sink.write_run_start_now(RunStart("r" * 32, "default", "first", None, time.time(), os.getpid(), "h", None))
assert os.stat(wal).st_ino == os.stat(wal + ".probe").st_ino, "the WAL was deleted and created again"
sink.close()
print(SQLiteStore(path).run("r" * 32).name)
"""


def test_a_new_sink_writes_through_the_connection_that_checked_the_store(tmp_path):
    # the first start_run of a process: closing the check's connection deleted the WAL files, and the
    # caller's connection created them again right after (2-4 ms)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _KEEPS_CONNECTION, str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "first"


_ONE_CONNECTION = r"""
import os, sqlite3, sys
opened = []
connect = sqlite3.connect
def counting(database, *args, **kwargs):
    opened.append(str(database))
    return connect(database, *args, **kwargs)
sqlite3.connect = counting
import trackhooks

path = sys.argv[1]
from trackhooks.store.sqlite import init_store
init_store(path)
opened.clear()
with trackhooks.start_run(name="one", store=path) as run:
    run.log_metrics({"loss": 1.0}, step=0)
after_one = len(opened)
with trackhooks.start_run(name="two", store=path) as run:  # the caller needs a connection again
    run.log_metrics({"loss": 2.0}, step=0)
after_two = len(opened)
reader = trackhooks.open_store(path)
import json
print(json.dumps([after_one, after_two, sorted((r.name, r.status, r.metric("loss").values) for r in reader.runs())]))
"""


def test_a_process_that_records_one_run_opens_one_connection(tmp_path):
    # the writer takes over the connection start_run wrote the run's row through (0.5 ms of a short
    # fit's finish()); a second start_run of the process opens its own and the writer keeps its
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _ONE_CONNECTION, str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    one, two, runs = json.loads(out.stdout)
    assert (one, two) == (1, 2)
    assert runs == [["one", "finished", [1.0]], ["two", "finished", [2.0]]]
