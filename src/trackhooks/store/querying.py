"""The finding half of the read API: ``runs(where=...)``, frames, read-only SQL and notebook display.

Mixed into :class:`~trackhooks.store.api.Store`, engine-neutral like it: the SQL comes from
``query.py`` in the engine's dialect (``self.engine``: "sqlite", "postgres") and runs through
``self._rows``. An engine supplies ``_readonly_query`` for ``query()``.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence

    from .readonly import QueryResult

from ..errors import InvalidValueError, short_repr
# the query language, frames, notebook display and read-only SQL are loaded by the first read that
# needs them: the write path imports this module (start_run), and they cost ~70 ms to import


def decode_params(values: Any) -> Any:
    from .frames import decode_params as decode

    return decode(values)


def RunList(items: Any) -> Any:  # noqa: N802 - stands for the class
    from .notebook import RunList as cls

    return cls(items)


def store_html(store: Any) -> str:
    from .notebook import store_html as html

    return html(store)


def runs_select(*args: Any, **kwargs: Any) -> Any:
    from .query import runs_select as select

    return select(*args, **kwargs)


def _json():
    import json

    return json


def _dialects() -> dict:
    from .query import DIALECTS

    return DIALECTS
from .status import effective_status

_LIST_COLUMNS = ("r.id, r.name, r.experiment, r.status, r.parent_id, r.start_time, r.end_time, r.pid, r.host, "
                 "r.pid_start, r.heartbeat")


class QueryMethods:
    """``runs``, ``runs_frame``, ``metrics_frame``, ``query`` and ``_repr_html_`` of every store."""

    engine = "abstract"
    _run_order = "start_time, id"

    # -- helpers
    @property
    def _dialect(self) -> str:
        return self.engine if self.engine in _dialects() else "sqlite"

    def _json_list(self) -> str:
        return _dialects()[self._dialect]["json_list"].format(list="?")

    def _rows_in(self, sql: str, id_list: str) -> list[tuple]:
        """Run ``sql`` whose ``{ids}`` stands for the ids of a JSON array (one parameter, any length)."""
        return self._rows(sql.replace("{ids}", self._json_list()), (id_list,))

    def _killed_ids(self) -> list[str]:
        """Ids of stored-'running' runs whose writer is gone (they read as 'killed')."""
        rows = self._rows("SELECT id, host, pid, pid_start, heartbeat FROM runs WHERE status = 'running'")
        return [rid for rid, host, pid, ps, hb in rows if effective_status("running", host, pid, ps, hb) != "running"]

    def _tail_order(self) -> str:
        return ", ".join("r." + c.strip() for c in self._run_order.split(","))

    def _run_select(self, columns: str, experiment: Any, status: Any, where: Any, order_by: Any, limit: Any,
                    archived: Any) -> tuple[str, list]:
        if experiment is not None and not isinstance(experiment, str):
            raise InvalidValueError(f"experiment must be a str, got {short_repr(experiment)}")
        return runs_select(columns, dialect=self._dialect, experiment=experiment, status=status, where=where,
                           order_by=order_by, limit=limit, archived=archived, killed_ids=self._killed_ids,
                           tail=self._tail_order())

    def _records(self, rows: list[tuple]) -> list[Any]:
        from .records import RunRecord

        if not rows:
            return []
        ids = _json().dumps([r[0] for r in rows])
        params: dict[str, dict[str, Any]] = {}
        tags: dict[str, dict[str, str]] = {}
        prows = self._rows_in("SELECT run_id, key, value FROM params WHERE run_id IN {ids} ORDER BY run_id, key", ids)
        for (rid, k, _), value in zip(prows, decode_params([r[2] for r in prows])):
            params.setdefault(rid, {})[k] = value
        for rid, k, v in self._rows_in("SELECT run_id, key, value FROM tags WHERE run_id IN {ids} "
                                       "ORDER BY run_id, key", ids):
            tags.setdefault(rid, {})[k] = v
        out = []
        for r in rows:
            r = list(r)
            r[11] = _json().loads(r[11]) if r[11] else {}
            out.append(RunRecord(self, tuple(r), params.get(r[0], {}), tags.get(r[0], {})))
        return out

    # -- public
    def runs(self, experiment: str | None = None, status: str | None = None, *, where: str | None = None,
             order_by: str | Sequence[str] | None = None, limit: int | None = None,
             archived: bool | str = False) -> RunList:
        """Runs, oldest first (or by ``order_by``), filtered in the database.

        ``status`` is the effective status (a dead 'running' run is 'killed'); ``where`` an expression
        of the where language (docs/api.md); ``order_by`` a field or ``-field`` (descending), or a
        list of them; ``archived``: False hides archived runs, True includes them, "only" shows only
        them. Returns a list (``RunList``) of RunRecord.
        """
        from .api import RUN_COLUMNS

        columns = ", ".join("r." + c.strip() for c in RUN_COLUMNS.split(","))
        sql, args = self._run_select(columns, experiment, status, where, order_by, limit, archived)
        return RunList(self._records(self._rows(sql, args)))

    def run_ids(self, experiment: str | None = None, status: str | None = None, *, where: str | None = None,
                order_by: str | Sequence[str] | None = None, limit: int | None = None,
                archived: bool | str = False) -> list[str]:
        """The ids ``runs(...)`` would return, without loading the records (one query)."""
        sql, args = self._run_select("r.id", experiment, status, where, order_by, limit, archived)
        return [r[0] for r in self._rows(sql, args)]

    def runs_frame(self, experiment: str | None = None, status: str | None = None, *, where: str | None = None,
                   order_by: str | Sequence[str] | None = None, limit: int | None = None,
                   archived: bool | str = False) -> Any:
        """``runs(...)`` as a pandas DataFrame, one row per run (columns in docs/api.md)."""
        from ..collector import paused
        from .frames import _pandas, frame_columns, runs_frame

        _pandas("runs_frame()")
        d = _dialects()[self._dialect]
        sql, args = self._run_select(_LIST_COLUMNS + ", " + frame_columns(d), experiment, status, where, order_by,
                                     limit, archived)
        with paused():  # the frame's hundreds of thousands of objects all stay alive
            return runs_frame(self, d, self._rows(sql, args), time.time())

    def metrics_frame(self, run_ids: Any, keys: str | Sequence[str] | None = None) -> Any:
        """Metric points of many runs in long form: columns run_id, key, step, epoch, value, timestamp.

        ``run_ids``: ids, id prefixes or RunRecords (rows follow this order, then key, then logging
        order); ``keys``: the metrics to read (default: all). One query reads every block.
        """
        return self._metrics_frame(run_ids, keys, with_run_id=True)

    def _metrics_frame(self, run_ids: Any, keys: Any, *, with_run_id: bool) -> Any:
        from .frames import _pandas, points_frame
        from .records import MetricNotFoundError, Series

        _pandas("metrics_frame()")
        if isinstance(run_ids, str) or hasattr(run_ids, "id"):
            run_ids = [run_ids]
        ids: list[str] = []
        for ref in run_ids:
            rid = ref.id if hasattr(ref, "id") and not isinstance(ref, str) else ref
            if not isinstance(rid, str):
                raise InvalidValueError(f"a run id is a str, got {short_repr(rid)}")
            if not self._rows("SELECT 1 FROM runs WHERE id = ?", (rid,)):
                rid = self.run(rid).id  # a unique prefix, or RunNotFoundError/AmbiguousRunError
            if rid not in ids:
                ids.append(rid)
        if isinstance(keys, str):
            keys = [keys]
        elif keys is not None:
            keys = list(keys)
            for k in keys:
                if not isinstance(k, str):
                    raise InvalidValueError(f"a metric key is a str, got {short_repr(k)}")
        sql = ("SELECT k.run_id, k.key, b.steps, b.epochs, b.vals, b.times FROM metric_keys k "
               "JOIN metric_blocks b ON b.key_id = k.id WHERE k.n > 0 AND k.run_id IN " + self._json_list())
        args: list[Any] = [_json().dumps(ids)]
        if keys is not None:
            sql += " AND k.key IN " + self._json_list()
            args.append(_json().dumps(keys))
        sql += " ORDER BY k.run_id, k.key, b.seq"
        groups: dict[tuple[str, str], list[tuple]] = {}
        for rid, key, s, e, v, t in self._rows(sql, args):
            groups.setdefault((rid, key), []).append((s, e, v, t))
        if keys is not None:
            found = {k for _, k in groups}
            missing = [k for k in keys if k not in found]
            if missing and (not with_run_id or len(missing) == len(keys)):
                where = f"run {ids[0]}" if len(ids) == 1 else f"any of the {len(ids)} runs"
                raise MetricNotFoundError(f"no metric {', '.join(map(repr, missing))} in {where}")
        order = {rid: i for i, rid in enumerate(ids)}
        key_rank = {k: i for i, k in enumerate(keys)} if keys is not None else None
        parts = sorted(groups.items(), key=lambda kv: (order[kv[0][0]],
                                                       key_rank[kv[0][1]] if key_rank is not None else 0, kv[0][1]))
        return points_frame([(rid, key, Series(key, blocks)) for (rid, key), blocks in parts], with_run_id)

    def query(self, sql: str, *, limit: int | None = None, timeout_s: float | None = None) -> QueryResult:
        """Run one read-only SELECT over the documented views (runs, params, tags, metrics,
        checkpoints, artifacts, datasets); anything else is refused with a ``QueryError`` and
        changes nothing. At most ``limit`` rows (``.truncated`` says when more existed), at most
        ``timeout_s`` seconds (defaults: ``readonly.DEFAULT_ROW_LIMIT`` rows, ``DEFAULT_TIMEOUT_S``)."""
        from .readonly import DEFAULT_ROW_LIMIT, DEFAULT_TIMEOUT_S

        return self._readonly_query(sql, DEFAULT_ROW_LIMIT if limit is None else limit,
                                    DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)

    def _readonly_query(self, sql: str, limit: int, timeout_s: float) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not run SQL queries")

    def _repr_html_(self) -> str:
        return store_html(self)
