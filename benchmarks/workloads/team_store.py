"""The team store on PostgreSQL (issue 15): replication, listing, series reads and UI pages, each next
to a bare psycopg baseline (or the same runs in SQLite) measured in the same invocation.

The server is ``$TRACKHOOKS_BENCH_PG`` (else ``$TRACKHOOKS_TEST_PG``, else
``postgresql://postgres@127.0.0.1:5432/postgres``); every measurement gets a schema of its own in
the database ``trackhooks_bench`` (created if missing) and drops it afterwards. Each config prints
one JSON line whose ``value`` is seconds (lower is better).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from typing import Any
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "team"
LABEL_KEYS = ()
CONFIGS: dict[str, list[str]] = {
    "pg: bare COPY of 1M rows": ["psycopg"],
    "pg: replicate 1M points until flush()": ["trackhooks", "psycopg"],
    "pg: bare SELECT of 10k runs": ["psycopg"],
    "pg: runs() over 10k runs": ["trackhooks", "psycopg"],
    "pg: indexed SELECT of 1M rows": ["psycopg"],
    "pg: read 1M-point series": ["trackhooks", "psycopg"],
    "ui: 10k runs in SQLite": ["trackhooks", "starlette"],
    "ui: 10k runs on PostgreSQL": ["trackhooks", "starlette", "psycopg"],
}
SIZES = {
    "full": {"points": 1_000_000, "runs": 10_000, "read_points": 1_000_000, "tries": 5},
    "quick": {"points": 1_000_000, "runs": 10_000, "read_points": 1_000_000, "tries": 3},
    "tiny": {"points": 20_000, "runs": 200, "read_points": 20_000, "tries": 2},
}
KEYS = ("loss", "acc", "lr", "grad_norm")
READ_BLOCK = 1000  # as core_micro's series read: more blocks than a tight logging loop makes
UI_CASES = {"default order": "/api/runs", "sort by metric": "/api/runs?sort=metric:loss&order=asc",
            "text filter": "/api/runs?q=run-99", "page 100": "/api/runs?offset=5000",
            "one experiment": "/api/runs?experiment=exp3"}


def server() -> str:
    return (os.environ.get("TRACKHOOKS_BENCH_PG") or os.environ.get("TRACKHOOKS_TEST_PG")
            or "postgresql://postgres@127.0.0.1:5432/postgres")


def preload(configs: list[str]) -> None:
    mods = {m for c in configs for m in CONFIGS[c]} - {"trackhooks"}
    _bench.import_modules(sorted(mods))


class Schema:
    """A fresh schema in the bench database; ``uri`` selects it (options=-csearch_path=...)."""

    def __init__(self) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        admin = server()
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname='trackhooks_bench'").fetchone() is None:
                conn.execute("CREATE DATABASE trackhooks_bench")
        p = conninfo_to_dict(admin)
        auth = quote(p.get("user", "postgres")) + (":" + quote(p["password"], safe="") if p.get("password") else "")
        self.db = f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/trackhooks_bench"
        self.name = "b_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.db, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")
        self.uri = f"{self.db}?options=" + quote(f"-csearch_path={self.name}", safe="")

    def connect(self):
        import psycopg

        return psycopg.connect(self.uri)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.db, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


def _rows_1m(n: int) -> list[tuple]:
    now = time.time()
    calls = n // len(KEYS)
    return [("r" * 32, k, i, i * 1e-3 + j, now + i * 1e-4) for i in range(calls) for j, k in enumerate(KEYS)]


def _bare_copy(p, tmp, clock):
    """The floor of writing 1M points from Python: one COPY of one row per point into a plain table."""
    s = Schema()
    try:
        rows = _rows_1m(p["points"])
        with s.connect() as conn:
            conn.execute("CREATE TABLE points (run_id text, key text, step bigint, value float8, time float8)")
            conn.commit()
            clock.setup_done()
            t = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy("COPY points (run_id, key, step, value, time) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
            conn.commit()
            dt = time.perf_counter() - t
            clock.fit_done()
            assert conn.execute("SELECT count(*) FROM points").fetchone()[0] == len(rows)
        return {"value": dt, "unit": "s", "points": len(rows)}
    finally:
        s.drop()


def _replicate(p, tmp, clock):
    """From the first of 250k four-key log_metrics calls until flush() returns with the team store
    holding every point (the spool write, the replication and the PostgreSQL commit included)."""
    os.environ["TRACKHOOKS_MIRROR_TIMEOUT"] = "600"  # flush() waits for the team store, however long
    os.environ["TRACKHOOKS_SPOOL"] = os.path.join(tmp, "spool")
    import trackhooks

    s = Schema()
    try:
        calls = p["points"] // len(KEYS)
        ds = [{k: i * 1e-3 + j for j, k in enumerate(KEYS)} for i in range(1000)]
        run = trackhooks.start_run(experiment="bench", store=s.uri, system_metrics=False, capture_output=False)
        run.flush()  # the schema exists and the run row is in: setup
        clock.setup_done()
        t = time.perf_counter()
        log = run.log_metrics
        for i in range(calls):
            log(ds[i % 1000], step=i)
        t_logged = time.perf_counter()
        run.flush()
        dt = time.perf_counter() - t
        clock.fit_done()
        run.finish()
        with s.connect() as conn:
            got = conn.execute("SELECT sum(n) FROM metric_keys").fetchone()[0]
        assert got == calls * len(KEYS), got
        return {"value": dt, "unit": "s", "points": calls * len(KEYS), "log_s": t_logged - t,
                "drain_after_last_call_s": dt - (t_logged - t)}
    finally:
        s.drop()


def _fill_runs(conn, n: int, engine: str) -> None:
    """n finished runs (3 params, 1 tag, 2 metric summaries each), written as rows: the listing
    paths read only these tables."""
    now = time.time() - 86400
    runs = [(f"{i:08x}" + uuid.uuid4().hex[8:], f"exp{i % 10}", f"run-{i}", "finished", None, now + i, now + i + 30,
             1000 + i, "bench-host", None, now + i + 30, json.dumps({"python": "3.11", "host": "bench-host"}), None, 0)
            for i in range(n)]
    params = [(r[0], k, v) for i, r in enumerate(runs)
              for k, v in (("lr", json.dumps(10 ** -(i % 5))), ("depth", str(i % 7)), ("seed", str(i)))]
    tags = [(r[0], "framework", "keras") for r in runs]
    keys = [(r[0], k, 50, 49, v, v, v + 1) for i, r in enumerate(runs)
            for k, v in (("loss", 1 / (50 + i % 13)), ("acc", 0.98))]
    cols = "id, experiment, name, status, parent_id, start_time, end_time, pid, host, pid_start, heartbeat, system, " \
           "note, archived"
    if engine == "sqlite":
        conn.executemany(f"INSERT INTO runs ({cols}) VALUES ({','.join('?' * 14)})", runs)
        conn.executemany("INSERT INTO params VALUES (?,?,?)", params)
        conn.executemany("INSERT INTO tags VALUES (?,?,?)", tags)
        conn.executemany("INSERT INTO metric_keys (run_id, key, n, last_step, last_value, min_value, max_value) "
                         "VALUES (?,?,?,?,?,?,?)", keys)
        conn.commit()
        return
    with conn.cursor() as cur:
        for table, columns, rows in (("runs", cols, runs), ("params", "run_id, key, value", params),
                                     ("tags", "run_id, key, value", tags),
                                     ("metric_keys", "run_id, key, n, last_step, last_value, min_value, max_value",
                                      keys)):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
    conn.commit()


def _team_schema(s: Schema) -> None:
    from trackhooks_postgres import schema

    with s.connect() as conn:
        schema.ensure(conn, s.name)


def _bare_select_runs(p, tmp, clock):
    """The rows runs() reads (runs, then their params and tags), fetched with psycopg, nothing built."""
    from trackhooks.store.api import RUN_COLUMNS

    s = Schema()
    try:
        _team_schema(s)
        with s.connect() as conn:
            _fill_runs(conn, p["runs"], "postgres")
            conn.execute("ANALYZE")
            conn.commit()
        clock.setup_done()
        times = []
        for _ in range(p["tries"]):
            t = time.perf_counter()
            with s.connect() as conn:
                rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY start_time, ord").fetchall()
                conn.execute("SELECT run_id, key, value FROM params ORDER BY run_id, key").fetchall()
                conn.execute("SELECT run_id, key, value FROM tags ORDER BY run_id, key").fetchall()
            times.append(time.perf_counter() - t)
            assert len(rows) == p["runs"]
        clock.fit_done()
        return {"value": statistics.median(times), "unit": "s", "note": "connect + 3 SELECTs, fetchall"}
    finally:
        s.drop()


def _runs_api(p, tmp, clock):
    import trackhooks

    s = Schema()
    try:
        _team_schema(s)
        with s.connect() as conn:
            _fill_runs(conn, p["runs"], "postgres")
            conn.execute("ANALYZE")
            conn.commit()
        clock.setup_done()
        times = []
        for _ in range(p["tries"]):
            t = time.perf_counter()
            recs = trackhooks.open_store(s.uri).runs()
            times.append(time.perf_counter() - t)
            assert len(recs) == p["runs"] and recs[-1].params["seed"] == p["runs"] - 1
        clock.fit_done()
        return {"value": statistics.median(times), "unit": "s", "note": "open_store(uri).runs(): records with params"}
    finally:
        s.drop()


def _bare_series(p, tmp, clock):
    """One series of read_points rows out of a plain (series, step) indexed table, as lists."""
    s = Schema()
    try:
        n = p["read_points"]
        with s.connect() as conn:
            conn.execute("CREATE TABLE points (series int, step bigint, epoch bigint, value float8, time float8)")
            with conn.cursor() as cur:
                with cur.copy("COPY points FROM STDIN") as copy:
                    now = time.time()
                    for series in (1, 2):
                        for i in range(n if series == 1 else n // 10):
                            copy.write_row((series, i, i // 10_000, i * 1e-6, now + i * 1e-3))
            conn.execute("CREATE INDEX points_by_series ON points (series, step)")
            conn.execute("ANALYZE points")
            conn.commit()
        clock.setup_done()
        times = []
        for _ in range(p["tries"]):
            t = time.perf_counter()
            with s.connect() as conn:
                rows = conn.execute("SELECT step, epoch, value, time FROM points WHERE series=%s ORDER BY step",
                                    (1,)).fetchall()
                steps = [r[0] for r in rows]
                values = [r[2] for r in rows]
            times.append(time.perf_counter() - t)
            assert len(values) == n and steps[-1] == n - 1
        clock.fit_done()
        return {"value": statistics.median(times), "unit": "s", "points": n,
                "note": "connect + indexed SELECT + steps/values lists"}
    finally:
        s.drop()


def _series_api(p, tmp, clock):
    os.environ["TRACKHOOKS_SPOOL"] = os.path.join(tmp, "spool")
    import trackhooks
    from trackhooks.sink import Batch, MetricColumns
    from trackhooks.store.sqlite import LocalStoreSink
    from trackhooks.sync import sync

    s = Schema()
    try:
        n = p["read_points"]
        local = os.path.join(tmp, "local")
        run = trackhooks.start_run(experiment="bench", store=local, system_metrics=False, capture_output=False)
        run.flush()
        sink = LocalStoreSink(local)
        now = time.time()
        for start in range(0, n, READ_BLOCK):
            b = Batch()
            c = MetricColumns()
            c.steps = list(range(start, min(start + READ_BLOCK, n)))
            c.epochs = [x // 10_000 for x in c.steps]
            c.values = [x * 1e-6 for x in c.steps]
            c.timestamps = [now + x * 1e-3 for x in c.steps]
            b.metrics[run.id] = {"loss": c}
            b.store = local
            sink.write(b)
        sink.close()
        run.finish()
        sync(trackhooks.open_store(local), s.uri)
        clock.setup_done()
        times = []
        for _ in range(p["tries"]):
            t = time.perf_counter()
            series = trackhooks.open_store(s.uri).run(run.id).metric("loss")
            steps, values = series.steps, series.values
            times.append(time.perf_counter() - t)
            assert len(values) == n and steps[-1] == n - 1
        clock.fit_done()
        return {"value": statistics.median(times), "unit": "s", "points": n,
                "note": f"open_store + run + metric + .steps/.values lists; {n // READ_BLOCK} blocks"}
    finally:
        s.drop()


def _ui(p, tmp, clock, engine: str):
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    s = None
    try:
        if engine == "sqlite":
            from trackhooks.store.sqlite import init_store, _connect

            store = os.path.join(tmp, "store-ui")
            conn = _connect(init_store(store))
            conn.execute("BEGIN")
            _fill_runs(conn, p["runs"], "sqlite")
            conn.close()
        else:
            s = Schema()
            _team_schema(s)
            with s.connect() as conn:
                _fill_runs(conn, p["runs"], "postgres")
                conn.execute("ANALYZE")
                conn.commit()
            store = s.uri
        client = TestClient(create_app(store))
        assert client.get("/api/runs").status_code == 200  # warm: the app's first request
        clock.setup_done()
        per_case = {}
        for label, url in UI_CASES.items():
            times = []
            for _ in range(p["tries"]):
                t = time.perf_counter()
                r = client.get(url)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            per_case[label] = statistics.median(times)
        clock.fit_done()
        return {"value": sum(per_case.values()), "unit": "s",
                "note": "sum of medians: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in per_case.items())}
    finally:
        if s is not None:
            s.drop()


_RUNNERS = {
    "pg: bare COPY of 1M rows": _bare_copy,
    "pg: replicate 1M points until flush()": _replicate,
    "pg: bare SELECT of 10k runs": _bare_select_runs,
    "pg: runs() over 10k runs": _runs_api,
    "pg: indexed SELECT of 1M rows": _bare_series,
    "pg: read 1M-point series": _series_api,
    "ui: 10k runs in SQLite": lambda p, t, c: _ui(p, t, c, "sqlite"),
    "ui: 10k runs on PostgreSQL": lambda p, t, c: _ui(p, t, c, "postgres"),
}


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    return _RUNNERS[config](p, tmp, clock)


if __name__ == "__main__":
    _bench.run_script(__name__)
