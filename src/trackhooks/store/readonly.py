"""Read-only SQL over documented views: ``store.query(sql)`` and ``trackhooks query "SELECT ..."``.

The views are the stable surface (the tables behind them may change between versions)::

    runs(id, name, experiment, status, parent_id, start_time, end_time, duration, archived, note)
    params(run_id, key, value, number)     value: the text (a string param as itself, others as JSON);
                                           number: the value as a number when it reads as one, else NULL
    tags(run_id, key, value)
    metrics(run_id, key, count, last, min, max, last_step)    one row per run and key (summaries)
    checkpoints(run_id, path, step, epoch, best, size, sha256, deleted, time)
    artifacts(run_id, name, sha256, size, time)
    datasets(run_id, name, context, digest, n_rows, source, time)

``status`` is the effective status (a dead ``running`` run reads ``killed``), ``duration`` seconds.

The view DDL below is written once for both engines: ``{src}`` is the schema of the tables,
``{killed}`` a one-column table of the ids of dead running runs, ``{now}`` an expression for the
current time in epoch seconds. SQLite creates the views as TEMP views on a separate connection
opened with ``mode=ro`` (temp objects shadow the main tables of the same name); PostgreSQL runs
the query in a read-only transaction with a statement_timeout over the same views.

SQLite safety, in layers: the connection is read-only at the file level (``mode=ro``), an
authorizer allows only SELECT, reads of the views and their tables, and functions (not
``load_extension``); PRAGMA, ATTACH, writes and DDL are refused before the statement runs; one
statement per call; a row limit (``truncated`` says more rows existed) and a time limit (a progress
handler interrupts the query).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import urllib.request
from typing import Any, Iterable

from ..errors import QueryError
from .query import DIALECTS

DEFAULT_ROW_LIMIT = 10_000
DEFAULT_TIMEOUT_S = 10.0

_NUM = "CASE WHEN {is_num} THEN {to_num} END"


def _param_text(x: str, dialect: str) -> str:
    d = DIALECTS[dialect]
    return f"CASE WHEN substr({x}, 1, 1) = '\"' THEN {d['json_string'].format(x=x)} ELSE {x} END"


def view_ddl(dialect: str, *, src: str, killed: str, now: str, prefix: str = "CREATE TEMP VIEW") -> list[str]:
    """CREATE VIEW statements of the documented views (see the module docstring)."""
    d = DIALECTS[dialect]
    text = _param_text("value", dialect)
    number = _NUM.format(is_num=d["is_number"].format(x=f"({text})"), to_num=d["to_number"].format(x=f"({text})"))
    status = f"CASE WHEN status = 'running' AND id IN (SELECT id FROM {killed}) THEN 'killed' ELSE status END"
    end = f"COALESCE(end_time, CASE WHEN ({status}) = 'running' THEN {now} ELSE heartbeat END)"
    return [
        f"{prefix} runs AS SELECT id, name, experiment, {status} AS status, parent_id, start_time, end_time, "
        f"{end} - start_time AS duration, archived, note FROM {src}runs",
        f"{prefix} params AS SELECT run_id, key, {text} AS value, {number} AS number FROM {src}params",
        f"{prefix} tags AS SELECT run_id, key, value FROM {src}tags",
        f"{prefix} metrics AS SELECT run_id, key, n AS count, last_value AS last, min_value AS min, "
        f"max_value AS max, last_step FROM {src}metric_keys WHERE n > 0",
        f"{prefix} checkpoints AS SELECT run_id, path, step, epoch, best, size, sha256, deleted, time "
        f"FROM {src}checkpoints",
        f"{prefix} artifacts AS SELECT run_id, name, sha256, size, time FROM {src}artifacts",
        f"{prefix} datasets AS SELECT run_id, name, context, digest, n_rows, source, time FROM {src}datasets",
    ]


VIEWS = ("runs", "params", "tags", "metrics", "checkpoints", "artifacts", "datasets")
_BASE_TABLES = ("runs", "params", "tags", "metric_keys", "checkpoints", "artifacts", "datasets")
_TABLE_FUNCTIONS = ("json_each", "json_tree", "generate_series")
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}


class QueryResult(list):
    """Rows (tuples) of a read-only query, with ``.columns`` and ``.truncated`` (the row limit cut
    the answer short)."""

    def __init__(self, rows: Iterable[tuple], columns: list[str], truncated: bool, sql: str):
        super().__init__(rows)
        self.columns = columns
        self.truncated = truncated
        self.sql = sql

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self]

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
            if isinstance(v, bytes):
                return v.hex()
            return v
        return {"columns": self.columns, "rows": [[clean(v) for v in row] for row in self],
                "truncated": self.truncated}

    def to_frame(self):
        from .frames import _pandas

        return _pandas("QueryResult.to_frame()").DataFrame(list(self), columns=self.columns)

    def _repr_html_(self) -> str:
        from .notebook import html_table

        note = f"<p>first {len(self)} rows (row limit)</p>" if self.truncated else ""
        return html_table(self.columns, list(self)) + note


_ACTIONS = {
    1: "CREATE INDEX", 2: "CREATE TABLE", 3: "CREATE TEMP INDEX", 4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER", 6: "CREATE TEMP VIEW", 7: "CREATE TRIGGER", 8: "CREATE VIEW", 9: "DELETE",
    10: "DROP INDEX", 11: "DROP TABLE", 12: "DROP TEMP INDEX", 13: "DROP TEMP TABLE", 14: "DROP TEMP TRIGGER",
    15: "DROP TEMP VIEW", 16: "DROP TRIGGER", 17: "DROP VIEW", 18: "INSERT", 19: "PRAGMA", 20: "read",
    21: "SELECT", 22: "a transaction", 23: "UPDATE", 24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE",
    27: "REINDEX", 28: "ANALYZE", 29: "CREATE VIRTUAL TABLE", 30: "DROP VIRTUAL TABLE", 31: "a function",
    32: "SAVEPOINT", 33: "a recursive query",
}


def sqlite_query(db_path: str, sql: str, *, killed_ids: Iterable[str] = (), limit: int = DEFAULT_ROW_LIMIT,
                 timeout_s: float = DEFAULT_TIMEOUT_S, now: float | None = None) -> QueryResult:
    """Run one read-only SELECT on a SQLite store through the documented views."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("a query is a non-empty SQL string", None, None, "SELECT ... FROM runs ...")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"the row limit must be a positive integer, not {limit!r}", None, None, "1, 2, ...")
    uri = "file:" + urllib.request.pathname2url(db_path) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        conn.execute("CREATE TEMP TABLE th_killed (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO th_killed (id) VALUES (?)", [(i,) for i in killed_ids])
        conn.execute("CREATE TEMP TABLE th_now (t REAL)")
        conn.execute("INSERT INTO th_now (t) VALUES (?)", (time.time() if now is None else now,))
        main_cols = {r[1] for r in conn.execute("PRAGMA main.table_info(runs)")}
        for ddl in view_ddl("sqlite", src="main.", killed="temp.th_killed", now="(SELECT t FROM temp.th_now)"):
            if "note" not in main_cols:  # a store written before notes existed
                ddl = ddl.replace(", archived, note FROM", ", archived, NULL AS note FROM")
            conn.execute(ddl)
        for view in VIEWS:
            conn.execute(f"SELECT * FROM {view} LIMIT 0")  # load the schema before the authorizer is on
        for fn in ("json_each", "json_tree"):  # eponymous tables register themselves on first use
            conn.execute(f"SELECT * FROM {fn}('[]')")
        allowed_reads = set(VIEWS) | set(_BASE_TABLES) | {"th_killed", "th_now"} | set(_TABLE_FUNCTIONS)
        refused: list[str] = []

        def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _src: str | None) -> int:
            if action == 21 or action == 33:  # SELECT, recursive CTE
                return sqlite3.SQLITE_OK
            if action == 20:  # read
                if arg1 in allowed_reads and db in ("main", "temp", None):
                    return sqlite3.SQLITE_OK
                if db is None and not (arg1 or "").lower().startswith("pragma_"):
                    return sqlite3.SQLITE_OK  # a common table expression of the query itself
                refused.append(f"reading {arg1!r} (query the views: {', '.join(VIEWS)})")
                return sqlite3.SQLITE_DENY
            if action == 31:  # function
                if (arg2 or "").lower() in _DENIED_FUNCTIONS:
                    refused.append(f"the function {arg2}()")
                    return sqlite3.SQLITE_DENY
                return sqlite3.SQLITE_OK
            what = _ACTIONS.get(action, f"action {action}")
            if arg1 in ("sqlite_master", "sqlite_temp_master"):
                what = {18: "CREATE", 9: "DROP"}.get(action, "changing the schema")
            elif arg1 and action != 22:
                what += f" {arg1}"
            refused.append(what)
            return sqlite3.SQLITE_DENY

        conn.set_authorizer(authorize)
        deadline = time.monotonic() + timeout_s
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            cur = conn.execute(sql)
            rows = cur.fetchmany(limit + 1)
        except sqlite3.ProgrammingError as exc:
            if "one statement" in str(exc):
                raise QueryError("one SQL statement per query", sql, None,
                                 "a single SELECT (remove the ';' and what follows)") from None
            raise QueryError(f"cannot run this query: {exc}", sql, None, "a SELECT over the views") from None
        except sqlite3.DatabaseError as exc:
            if not refused and ("cannot modify" in str(exc) or "readonly" in str(exc)):
                refused.append(sql.split(None, 1)[0].upper())  # DELETE/UPDATE/INSERT through a view
            if refused:
                # "CREATE TABLE" says more than the "INSERT sqlite_master" that SQLite checks first
                what = next((r for r in refused if "sqlite_master" not in r), refused[0])
                raise QueryError("trackhooks query is read-only: " + what + " is not allowed; "
                                 "nothing was changed", sql, None,
                                 f"a SELECT over the views {', '.join(VIEWS)}") from None
            if "interrupted" in str(exc):
                raise QueryError(f"the query ran longer than the time limit of {timeout_s:g} s and was stopped",
                                 sql, None, "a cheaper query, or a larger timeout") from None
            raise QueryError(f"SQL error: {exc}", sql, None, f"a SELECT over the views {', '.join(VIEWS)}") from None
        if cur.description is None:
            raise QueryError("the statement returns no rows", sql, None, "a SELECT")
        columns = [c[0] for c in cur.description]
        truncated = len(rows) > limit
        return QueryResult(rows[:limit], columns, truncated, sql)
    finally:
        conn.close()


def dumps_result(result: QueryResult) -> str:
    return json.dumps(result.to_json(), ensure_ascii=False)
