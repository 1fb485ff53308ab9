"""The where language: parser, errors with a caret, compiled SQL on a real store (and on a real
PostgreSQL for the postgres dialect), order_by/limit/archived, effective status, frames, read-only
SQL, notebook display."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time

import pytest

import trackhooks
from trackhooks import QueryError, TrackhooksError
from trackhooks.store.query import compile_where, parse, parse_order, runs_select

RUNS = [
    # name, experiment, params, tags, loss points
    ("a", "exp1", {"lr": 0.001, "opt": "adam", "layers": 2, "my key": "x", "flag": True}, {"team": "vision", "n": "10"},
     [0.9, 0.5, 0.2, 0.3]),
    ("b", "exp1", {"lr": 0.01, "opt": "sgd", "layers": 4, "flag": False}, {"team": "nlp", "n": "9"}, [0.8, 0.6, 0.4]),
    ("c", "exp2", {"lr": "0.0005", "opt": "adam", "layers": 8}, {"team": "vision"}, [0.7, 0.1, float("nan")]),
    ("d", "exp2", {"lr": "abc", "opt": "it's"}, {}, []),
    ("e_1", "exp2", {"lr": 0.1, "opt": "100%"}, {"team": "Vision"}, [2.0]),
]


@pytest.fixture
def store(store_path):
    for name, exp, params, tags, losses in RUNS:
        with trackhooks.start_run(exp, name=name, params=params, tags=tags) as run:
            for v in losses:
                run.log_metric("loss", v)
            if losses:
                run.log_metric("val/acc", len(losses) / 10)
    return trackhooks.open_store(store_path)


def names(store, where=None, **kw):
    return [r.name for r in store.runs(where=where, **kw)]


WHERE_CASES = [
    ("params.lr < 0.005", ["a", "c"]),                     # "0.0005" is a string that reads as a number
    ("params.lr = 0.001", ["a"]),
    ("params.lr = '0.001'", ["a"]),                        # a number param compares as text with a string
    ("params.lr = 'abc'", ["d"]),
    ("params.lr > 'abc'", []),                             # a string comparison, fine
    ("params.lr >= 0.01 and params.lr <= 0.1", ["b", "e_1"]),
    ("params.opt in ('adam', 'sgd')", ["a", "b", "c"]),
    ("params.opt not in ('adam')", ["b", "d", "e_1"]),
    ("params.opt = 'it''s'", ["d"]),
    ("params.opt like '100\\%'", ["e_1"]),                 # \ escapes a wildcard
    ("params.opt like 'a%'", ["a", "c"]),
    ("params.opt like '_gd'", ["b"]),
    ("tags.team like 'vision'", ["a", "c"]),               # like is case-sensitive
    ("tags.team ilike 'VISION'", ["a", "c", "e_1"]),
    ("tags.team != 'vision'", ["b", "e_1"]),               # runs without the tag match no comparison
    ("tags.team is null", ["d"]),
    ("tags.team is not null", ["a", "b", "c", "e_1"]),
    ("tags.n > 9.5", ["a"]),                               # a tag that reads as a number compares as one
    ("params.layers > 3", ["b", "c"]),
    ("params.flag = true", ["a"]),
    ("params.flag != true", ["b"]),
    ("params.`my key` = 'x'", ["a"]),
    ("metrics.loss < 0.35", ["a"]),                        # last value; c's last is NaN
    ("min(metrics.loss) < 0.15", ["c"]),
    ("max(metrics.loss) >= 0.8", ["a", "b", "e_1"]),
    ("count(metrics.loss) = 3", ["b", "c"]),
    ("metrics.loss is null", ["d"]),                       # is null: the run has no such metric
    ("metrics.val/acc > 0.25", ["a", "b", "c"]),
    ("not metrics.loss < 0.35", ["b", "e_1"]),             # unknown (NaN, missing) stays unknown under not
    ("params.lr < 0.005 or name = 'd'", ["a", "c", "d"]),
    ("(params.lr < 0.005 or name = 'd') and experiment = 'exp2'", ["c", "d"]),
    ("not (params.opt = 'adam' or params.opt = 'sgd')", ["d", "e_1"]),
    ("0.005 > params.lr", ["a", "c"]),                     # value on the left
    ("name = 'e_1'", ["e_1"]),
    ("name like 'e\\_%'", ["e_1"]),
    ("name = 'a' OR name = 'b'", ["a", "b"]),                # keywords in any case
    ("status = 'finished'", ["a", "b", "c", "d", "e_1"]),
    ("status in ('running', 'killed')", []),
    ("duration >= 0", ["a", "b", "c", "d", "e_1"]),
    ("start_time > '2000-01-01' and end_time is not null", ["a", "b", "c", "d", "e_1"]),
    ("start_time < 0", []),
    ("system.python like '3.%'", ["a", "b", "c", "d", "e_1"]),
    ("system.nope is null", ["a", "b", "c", "d", "e_1"]),
    ("parent_id is null", ["a", "b", "c", "d", "e_1"]),
]


@pytest.mark.parametrize("where, expected", WHERE_CASES)
def test_where(store, where, expected):
    assert names(store, where) == expected


def test_where_matches_python_filter_on_every_param(store):
    """The compiled SQL agrees with the documented rule evaluated in Python, for every comparison."""
    recs = store.runs()

    def as_number(v):
        text = v if isinstance(v, str) else ("true" if v is True else "false" if v is False else repr(v))
        try:
            return float(text)
        except ValueError:
            return None

    for literal in (0.001, 0.005, 2, 8):
        for op, fn in (("<", lambda a, b: a < b), (">=", lambda a, b: a >= b), ("=", lambda a, b: a == b)):
            for key in ("lr", "layers"):
                want = [r.name for r in recs if key in r.params and isinstance(r.params[key], (int, float, str))
                        and not isinstance(r.params[key], bool) and as_number(r.params[key]) is not None
                        and fn(as_number(r.params[key]), literal)]
                assert names(store, f"params.{key} {op} {literal!r}") == want, (key, op, literal)


def test_order_by_limit(store):
    assert names(store, order_by="-metrics.loss") == ["e_1", "b", "a", "c", "d"]  # NaN last / missing last
    assert names(store, order_by="metrics.loss") == ["a", "b", "e_1", "c", "d"]
    assert names(store, order_by="params.lr") == ["c", "a", "b", "e_1", "d"]      # numbers before text
    assert names(store, order_by="-params.lr") == ["e_1", "b", "a", "c", "d"]
    assert names(store, order_by=["experiment", "-name"]) == ["b", "a", "e_1", "d", "c"]
    assert names(store, order_by="-experiment, name") == ["c", "d", "e_1", "a", "b"]
    assert names(store, order_by="max(metrics.loss) desc") == ["e_1", "a", "b", "c", "d"]
    assert names(store, order_by="-metrics.loss", limit=2) == ["e_1", "b"]
    assert names(store, limit=0) == []
    assert names(store, "experiment = 'exp2'", order_by="name", limit=1) == ["c"]
    assert names(store, experiment="exp1", where="params.lr > 0.005") == ["b"]


def test_runs_returns_a_list_that_renders(store):
    recs = store.runs()
    assert isinstance(recs, list) and len(recs) == 5
    assert recs[1:3] == [recs[1], recs[2]] and type(recs[1:3]).__name__ == "RunList"
    html = recs._repr_html_()
    assert "<table" in html and "params.lr" in html and "it&#x27;s" in html


def test_status_where_sees_killed_runs(store, store_path):
    """A run whose process died without finishing is 'running' in the table but reads 'killed', in
    where, status= and order_by alike."""
    code = textwrap.dedent(f"""
        import os, trackhooks
        run = trackhooks.start_run("exp3", name="dead", store={store_path!r})
        run.log_metric("loss", 1.0)
        run.flush()
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with trackhooks.start_run("exp3", name="alive") as live:
        live.flush()
        assert names(store, "status = 'killed'") == ["dead"]
        assert names(store, status="killed") == ["dead"]
        assert names(store, "status = 'running'") == ["alive"]
        assert names(store, "status != 'finished'") == ["dead", "alive"]
        assert names(store, "experiment = 'exp3' and duration >= 0") == ["dead", "alive"]
        assert store.runs(where="name = 'dead'")[0].stored_status == "running"


@pytest.mark.parametrize("where, position, expected_word", [
    ("params.lr <", 11, "a string in single quotes"),
    ("lr < 3", 0, "params.<key>"),
    ("count(params.lr) > 1", 6, "metrics.<key>"),
    ("metrics.loss = 'x'", 13, "a number"),
    ("metrics.loss like 'x%'", 13, "a text field"),
    ("(name = 'a'", 11, "')'"),
    ('name = "a"', 7, "'text' instead"),
    ("' or 1=1; drop table runs --", 0, "closing '"),
    ("name = 'a' and", 14, "a field"),
    ("name = 'a' or or name = 'b'", 14, "a field"),
    ("status = 'finshed'", 7, "running, finished, failed, killed"),
    ("start_time > 'yesterday'", 11, "ISO date"),
    ("name = null", 7, "is null"),
    ("name is nul", 8, "null or not null"),
    ("name 'a'", 5, "=, !=, <"),
    ("params. = 1", 0, "params.<key>"),
    ("name = 'a' extra", 11, "and, or"),
    ("params.lr in 1, 2", 13, "'('"),
    ("name not = 'a'", 9, "in (...)"),
    ("metrics.loss = true", 13, "a number"),
    ("params.lr > params.layers", 12, "a string, a number"),
    ("name = 'a' ; drop table runs", 11, "a field, a value"),
    ("min(metrics.loss", 16, "')'"),
    ("1.2.3 > name", 0, "a number such as"),
])
def test_query_errors_show_where_and_what(store, where, position, expected_word):
    with pytest.raises(QueryError) as info:
        store.runs(where=where)
    err = info.value
    assert isinstance(err, TrackhooksError) and isinstance(err, ValueError)
    assert err.position == position and err.expression == where
    lines = str(err).splitlines()
    assert lines[1] == "  " + where
    assert lines[2] == "  " + " " * position + "^"
    assert expected_word in err.expected
    assert len(store.runs()) == 5  # nothing changed


def test_injection_never_reaches_sql_text():
    for where in ["name = ''' or 1=1; drop table runs --'", "params.`x'); drop table runs; --` = 1",
                  "tags.`a\" or \"1\"=\"1` = 'b'", "name like '%'' or 1=1 --'"]:
        sql, args = compile_where(where)
        assert "drop" not in sql.lower() and "1=1" not in sql
        assert any(isinstance(a, str) and ("drop" in a or "1=1" in a or '"1"' in a) for a in args)


def test_injection_attempts_find_nothing_and_change_nothing(store):
    before = store.query("SELECT COUNT(*) FROM runs")[0][0]
    assert names(store, "name = ''' or 1=1; drop table runs --'") == []
    assert names(store, "params.`lr'); DROP TABLE runs; --` = 1") == []
    assert store.query("SELECT COUNT(*) FROM runs")[0][0] == before == 5


def test_blank_where_is_no_filter(store):
    assert names(store, "") == names(store, "   ") == names(store) == ["a", "b", "c", "d", "e_1"]


def test_bad_arguments(store):
    for kwargs in ({"limit": -1}, {"limit": "3"}, {"archived": "yes"}, {"status": "done"}, {"where": 3},
                   {"order_by": "-"}, {"order_by": "name,"}, {"order_by": "lr"}, {"order_by": [3]}):
        with pytest.raises(QueryError):
            store.runs(**kwargs)
    with pytest.raises(TypeError):
        store.runs(experiment=3)


def test_parse_order_and_tree():
    assert [(str(f), d) for f, d in parse_order("-metrics.`a b`, name asc")] == [("metrics.`a b`", True),
                                                                                  ("name", False)]
    assert parse("params.x = 1 or not (name = 'a' and tags.t is null)") is not None
    sql, args = runs_select("r.id", where="params.lr < 1 and name = 'x'", dialect="postgres")
    assert "?" in sql and args[-1] == "x" and "%s" not in sql


def test_archived_runs_are_hidden_unless_asked(store):
    b = store.runs(where="name = 'b'")[0]
    assert store.archive_runs([b.id]) == [b.id]
    assert names(store) == ["a", "c", "d", "e_1"]
    assert names(store, archived=True) == ["a", "b", "c", "d", "e_1"]
    assert names(store, archived="only") == ["b"]
    assert store.run(b.id).archived is True  # by id it is still found
    assert store.query("SELECT name FROM runs WHERE archived = 1").dicts() == [{"name": "b"}]
    store.archive_runs([b.id])  # again: a no-op
    store.unarchive_runs(b.id)
    assert names(store) == ["a", "b", "c", "d", "e_1"]


# ---- PostgreSQL: the same compiled conditions over the same rows ---------------------------------

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture
def pg(store):
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    schema = f"th_query_test_{os.getpid()}"
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"SET search_path TO {schema}")
    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, experiment TEXT, name TEXT, status TEXT, parent_id TEXT, "
                 "start_time DOUBLE PRECISION, end_time DOUBLE PRECISION, pid INTEGER, host TEXT, pid_start BIGINT, "
                 "heartbeat DOUBLE PRECISION, system TEXT, note TEXT, archived INTEGER NOT NULL DEFAULT 0)")
    conn.execute("CREATE TABLE params (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key))")
    conn.execute("CREATE TABLE tags (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key))")
    conn.execute("CREATE TABLE metric_keys (id SERIAL PRIMARY KEY, run_id TEXT, key TEXT, n INTEGER, last_step BIGINT, "
                 "last_value DOUBLE PRECISION, min_value DOUBLE PRECISION, max_value DOUBLE PRECISION)")
    src = store._db()
    with conn.cursor() as cur:
        for r in src.execute("SELECT id, experiment, name, status, parent_id, start_time, end_time, pid, host, "
                             "pid_start, heartbeat, system, note, archived FROM runs"):
            cur.execute("INSERT INTO runs VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", tuple(r))
        for table in ("params", "tags"):
            cur.executemany(f"INSERT INTO {table} VALUES (%s,%s,%s)",
                            src.execute(f"SELECT run_id, key, value FROM {table}").fetchall())
        cur.executemany("INSERT INTO metric_keys (run_id, key, n, last_step, last_value, min_value, max_value) "
                        "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                        src.execute("SELECT run_id, key, n, last_step, last_value, min_value, max_value "
                                    "FROM metric_keys").fetchall())
    try:
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def test_postgres_dialect_gives_the_same_answers(store, pg):
    for where in [w for w, _ in WHERE_CASES] + [None]:
        for order in (None, "-metrics.loss", "params.lr", "-name"):
            sql, args = runs_select("r.name", where=where, order_by=order, tail="r.start_time, r.id")
            want = [r[0] for r in store._db().execute(sql, args)]
            sql, args = runs_select("r.name", where=where, order_by=order, dialect="postgres",
                                    tail="r.start_time, r.id")
            got = [r[0] for r in pg.execute(sql.replace("%", "%%").replace("?", "%s"), args)]
            assert got == want, (where, order)


# ---- frames ---------------------------------------------------------------------------------------

def test_runs_frame(store):
    pd = pytest.importorskip("pandas")
    df = store.runs_frame(where="experiment = 'exp1' or name = 'c'", order_by="name")
    assert list(df.columns[:8]) == ["id", "name", "experiment", "status", "parent_id", "start_time", "end_time",
                                    "duration"]
    assert list(df["name"]) == ["a", "b", "c"]
    assert {"params.lr", "params.opt", "params.layers", "params.flag", "params.my key", "tags.team", "tags.n",
            "metrics.loss", "metrics.val/acc"} <= set(df.columns)
    assert list(df["params.layers"]) == [2, 4, 8]
    assert list(df["params.lr"]) == [0.001, 0.01, "0.0005"]
    assert df["metrics.loss"].iloc[0] == 0.3 and math.isnan(df["metrics.loss"].iloc[2])
    assert str(df["start_time"].dtype) == "datetime64[ns, UTC]"
    assert (df["duration"] >= 0).all()
    recs = store.runs(where="experiment = 'exp1' or name = 'c'", order_by="name")
    assert list(df["id"]) == [r.id for r in recs]
    assert abs(df["start_time"].iloc[0].timestamp() - recs[0].start_time) < 1e-3
    empty = store.runs_frame(where="name = 'nobody'")
    assert len(empty) == 0 and list(empty.columns) == list(df.columns[:8])
    assert isinstance(df, pd.DataFrame)


FRAME_RUNS = [
    # params, tags, metrics {key: points}: keys that need quoting, values that are lists, dicts,
    # strings that look like lists or numbers, NaN and inf, floats SQLite prints inexactly
    ({"lr": 0.001, "layers": 2, "sched": [1, 2.5], "opt": {"name": "adam", "b": [0.9]}, 'we"ird\\key': "é,\\x",
      "nan": math.nan, "inf": -math.inf, "flag": True, "none": None, "text": "[1, 2]"},
     {"team": "vision", "note": 'a "quoted", comma'},
     {"loss": [0.9, 0.23426122710702801], "acc": [0.5, math.nan], "big": [math.inf], "tiny": [1e-320]}),
    ({"lr": "0.01", "layers": 4}, {}, {"loss": [0.0970564290497321, 0.1 + 0.2]}),
    ({}, {}, {}),                                                   # nothing logged
    ({"layers": 8, "extra": "x"}, {"team": "nlp"}, {"acc": [-math.inf]}),
]


def test_runs_frame_matches_the_records_on_every_engine(any_store):
    """Every cell of runs_frame is what the RunRecord says, on both engines: params as logged (a
    list or dict as its stored JSON text), tags, last metric values exactly (NaN, inf, doubles that
    need 17 digits), missing keys as None/NaN, and a live run's status and open end."""
    pd = pytest.importorskip("pandas")
    ids = []
    for i, (params, tags, metrics) in enumerate(FRAME_RUNS):
        with trackhooks.start_run("frames", name=f"r{i}", params=params, tags=tags) as run:
            for key, points in metrics.items():
                for v in points:
                    run.log_metric(key, v)
        ids.append(run.id)
    live = trackhooks.start_run("frames", name="live", params={"layers": 1})
    live.log_metric("loss", 2.0)
    live.flush()
    try:
        store = trackhooks.open_store()
        df = store.runs_frame()
        recs = store.runs()
        assert list(df["id"]) == [r.id for r in recs] == ids + [live.id]
        pkeys = sorted({k for r in recs for k in r.params})
        tkeys = sorted({k for r in recs for k in r.tags})
        mkeys = sorted({k for r in recs for k in r.metric_keys()})
        assert {"sched", "opt.name", "opt.b", 'we"ird\\key'} <= set(pkeys) and "big" in mkeys
        assert list(df.columns) == (["id", "name", "experiment", "status", "parent_id", "start_time", "end_time",
                                     "duration"] + [f"params.{k}" for k in pkeys] + [f"tags.{k}" for k in tkeys]
                                    + [f"metrics.{k}" for k in mkeys])
        for row, rec in zip(df.itertuples(index=False), recs):
            row = dict(zip(df.columns, row))
            assert (row["name"], row["experiment"], row["status"], row["parent_id"]) == (
                rec.name, rec.experiment, rec.status, rec.parent_id)
            for k in pkeys:
                want = rec.params.get(k)
                if isinstance(want, (list, dict)):  # a cell holds a scalar: the stored JSON text
                    want = json.dumps(want, separators=(",", ":"))
                got = row[f"params.{k}"]
                if want is None or (isinstance(want, float) and math.isnan(want)):
                    assert pd.isna(got), (rec.name, k, got)
                else:  # an int in a column with gaps reads as a float (pandas' NaN for missing)
                    assert got == want and isinstance(got, (str, bool)) == isinstance(want, (str, bool)), \
                        (rec.name, k, got, want)
            for k in tkeys:
                assert row[f"tags.{k}"] == rec.tags.get(k) or (k not in rec.tags and pd.isna(row[f"tags.{k}"]))
            for k in mkeys:
                got = row[f"metrics.{k}"]
                if k in rec.metric_keys():
                    want = rec.metric(k).values[-1]
                    assert got == want or (math.isnan(got) and math.isnan(want)), (rec.name, k, got, want)
                else:
                    assert math.isnan(got)
        assert df["start_time"].iloc[0].timestamp() == pytest.approx(recs[0].start_time, abs=1e-6)
        assert str(df["start_time"].dtype) == str(df["end_time"].dtype) == "datetime64[ns, UTC]"
        assert str(df["params.layers"].dtype) == "float64" and df["params.layers"].isna().tolist() == [
            False, False, True, False, False]
        assert str(df["params.lr"].dtype) == "object"  # a number in one run, a string in another
        assert all(str(df[f"metrics.{k}"].dtype) == "float64" for k in mkeys)
        last = df.iloc[-1]
        assert last["status"] == "running" and pd.isna(last["end_time"])
        assert 0 < last["duration"] <= time.time() - recs[-1].start_time
        assert (df["duration"].iloc[:-1] >= 0).all()
    finally:
        live.finish()


def test_runs_frame_keeps_a_param_that_is_not_json_as_its_text(store):
    """A value no trackhooks writer produces (a hand-edited store) does not break the frame."""
    import sqlite3

    a, b = store.runs(where="name in ('a', 'b')")
    conn = sqlite3.connect(os.path.join(store.path, "trackhooks.db"))
    with conn:
        conn.execute("UPDATE params SET value = 'not json' WHERE run_id = ? AND key = 'opt'", (a.id,))
    conn.close()
    df = store.runs_frame(where="name in ('a', 'b')")
    assert df["params.opt"].tolist() == ["not json", "sgd"]
    assert df["params.lr"].tolist() == [0.001, 0.01]  # the other values of that run still decode


def test_runs_frame_leaves_the_garbage_collector_as_it_found_it(store):
    import gc

    assert gc.isenabled()
    store.runs_frame()
    assert gc.isenabled()
    gc.disable()
    try:
        store.runs_frame()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_metrics_frames(store):
    pytest.importorskip("pandas")
    a, b = store.runs(where="name in ('a', 'b')")
    df = a.metrics_frame()
    assert list(df.columns) == ["key", "step", "epoch", "value", "timestamp"]
    assert list(df[df.key == "loss"]["value"]) == [0.9, 0.5, 0.2, 0.3]
    assert list(df[df.key == "loss"]["step"]) == [0, 1, 2, 3]
    assert df["epoch"].isna().all()
    assert list(a.metrics_frame("val/acc")["value"]) == [0.4]
    with pytest.raises(KeyError):
        a.metrics_frame(["nope"])
    many = store.metrics_frame([b.id, a.id], ["loss"])
    assert list(many.columns) == ["run_id", "key", "step", "epoch", "value", "timestamp"]
    assert list(many["run_id"]) == [b.id] * 3 + [a.id] * 4
    assert list(many["value"]) == [0.8, 0.6, 0.4, 0.9, 0.5, 0.2, 0.3]
    assert len(store.metrics_frame([a.id[:10]])) == 5  # a prefix works; all keys


def test_metrics_frame_epochs(store_path):
    pytest.importorskip("pandas")
    with trackhooks.start_run("e") as run:
        run.log_metric("x", 1.0, epoch=0)
        run.log_metric("x", 2.0)
        run.log_metric("x", 3.0, epoch=1, step=10)
    df = trackhooks.open_store(store_path).run(run.id).metrics_frame()
    assert df["epoch"].tolist()[0] == 0 and df["epoch"].isna().tolist() == [False, True, False]
    assert df["step"].tolist() == [0, 1, 10] and str(df["epoch"].dtype) == "Int64"


def test_frames_name_pandas_when_missing(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without pandas looks like
    with pytest.raises(ImportError, match="pip install pandas"):
        store.runs_frame()
    with pytest.raises(ImportError, match="pandas"):
        store.runs()[0].metrics_frame()


def test_import_trackhooks_does_not_import_pandas():
    code = "import sys, trackhooks; s = trackhooks.open_store; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ---- notebook -------------------------------------------------------------------------------------

def test_html_is_escaped(store_path):
    evil = "<script>alert(1)</script>"
    with trackhooks.start_run("e", name=evil, params={"p": evil}, tags={"t": "<b>x</b>"}) as run:
        run.log_metric("<i>m</i>", 1.0)
    store = trackhooks.open_store(store_path)
    rec = store.run(run.id)
    for html in (rec._repr_html_(), store.runs()._repr_html_(), store._repr_html_()):
        assert "<script>" not in html and "<b>x" not in html and "<i>m" not in html
    assert "&lt;script&gt;" in rec._repr_html_() and "&lt;i&gt;m&lt;/i&gt;" in rec._repr_html_()
    assert "params" in rec._repr_html_() and "1" in rec._repr_html_()


def test_plot(store):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    rec = store.runs(where="name = 'a'")[0]
    ax = rec.plot()
    assert sorted(line.get_label() for line in ax.get_lines()) == ["loss", "val/acc"]
    assert list(ax.get_lines()[0].get_ydata()) == [0.9, 0.5, 0.2, 0.3]
    ax = rec.plot("loss", x="time")
    assert len(ax.get_lines()) == 1
    with pytest.raises(KeyError):
        rec.plot("nope")
    with pytest.raises(TypeError):
        rec.plot("loss", x="wall")


# ---- fuzzing: any text is either a valid expression or a QueryError, never another exception ------

def test_any_text_compiles_or_raises_query_error():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    pieces = st.sampled_from(["params.lr", "metrics.loss", "min(", "count(metrics.x)", "tags.`a b`", "name", "status",
                              "start_time", "system.python", "(", ")", "and", "or", "not", "in", "like", "is", "null",
                              "=", "!=", "<", ">=", "'x'", "'it''s'", "3", "-1e-3", ".5", "true", ",", "`", "'", "%",
                              "drop table runs", ";", "--", "\\"])
    exprs = st.one_of(st.text(max_size=40), st.lists(pieces, max_size=12).map(" ".join))

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(exprs, st.sampled_from(["sqlite", "postgres"]))
    def check(expr, dialect):
        try:
            sql, args = compile_where(expr, dialect=dialect)
        except QueryError as exc:
            assert exc.expression == expr and str(exc)
            return
        assert expr.strip() == "" or sql.startswith("(")
        assert sql.count("?") == len(args)

    check()
