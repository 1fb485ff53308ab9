"""The read API, the same over every store engine.

``Store`` holds every read query once, in SQL that SQLite and PostgreSQL both accept (``?``
placeholders; an engine translates them), over the documented schema (see ``sqlite.py`` and the
PostgreSQL engine's ``schema/*.sql``). An engine subclass supplies only the primitives at the top:
how to run a query, where a stored file is, and how to write mirror cursors. The CLI, the report,
the UI and ``sync`` use the public methods below and never see SQL.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any, Hashable, Iterable, Sequence

from ..errors import AmbiguousRunError, RunNotFoundError
from .querying import QueryMethods
from .records import ArtifactRecord, CheckpointRecord, DatasetRecord, MediaRecord, RunRecord
from .status import effective_status


def _loads(text: str) -> Any:
    # json (and the re it imports) is loaded by the first read, not with the write path
    global _loads
    from json import loads as _loads

    return _loads(text)


RUN_COLUMNS = ("id, experiment, name, status, parent_id, start_time, end_time, pid, host, pid_start, heartbeat, "
               "system, note, archived")
CHUNK = 500  # ids per IN (...) list: SQLite bounds the number of parameters of one statement


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


_MISSING = object()


def _param_decoder():
    """json.loads for stored param values, memoised for scalars: across many runs the same few
    values (a learning rate, a depth, a flag) repeat; lists and dicts are decoded every time, so
    that no two records share a mutable value."""
    memo: dict[str, Any] = {}

    def decode(text: str) -> Any:
        got = memo.get(text, _MISSING)
        if got is not _MISSING:
            return got
        value = int(text) if text.isascii() and text.isdigit() else _loads(text)
        if not isinstance(value, (list, dict)):
            memo[text] = value
        return value

    return decode


class Store(QueryMethods):
    """Read access to a store. Safe to use while other processes write to it.

    ``Store(uri)`` opens the engine for ``uri`` like :func:`trackhooks.open_store` (without its
    existence check); every store is an instance of this class.
    """

    #: "sqlite", "postgres", ...
    engine = "abstract"
    #: the store as shown to people (a path, or a URI with any password removed)
    uri = ""
    #: tie-break of runs that started at the same instant (insertion order where the engine has one)
    _run_order = "start_time, id"

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is Store:
            from . import engine_for

            return engine_for(args[0] if args else kwargs.get("uri"))
        return super().__new__(cls)

    # ---- engine primitives ------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Run one read query (``?`` placeholders) and return all rows."""
        raise NotImplementedError

    def _artifact_file(self, sha256: str) -> str:
        """A local file with the content of a stored file (fetched into a cache if need be)."""
        raise NotImplementedError

    def _cursor_load(self, mirror: str, run_id: str) -> tuple[str, int] | None:
        """The (JSON state, version) of a mirror cursor, or None."""
        raise NotImplementedError

    def _cursor_commit(self, mirror: str, run_id: str, state: str, version: int, now: float) -> bool:
        """Insert (version < 0) or compare-and-swap update a mirror cursor; False if it moved meanwhile."""
        raise NotImplementedError

    def change_token(self) -> Hashable:
        """A value that changes whenever anything was committed to the store (for caches of viewers)."""
        return None

    def close(self) -> None:
        """Release connections (the store can still be used afterwards: they reopen)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    # ---- runs -------------------------------------------------------------------------------
    def _select(self, where: str = "", args: Sequence[Any] = (), *, limit: int | None = None) -> list[RunRecord]:
        """Runs matching a WHERE clause over ``runs``, oldest first, with params and tags in two bulk
        queries (not two per run: a team store is a network round trip away)."""
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self._rows(f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY {self._run_order}{tail}", args)
        if not rows:
            return []
        params: dict[str, dict[str, Any]] = {}
        tags: dict[str, dict[str, str]] = {}
        if len(rows) <= CHUNK:
            ids = [r[0] for r in rows]
            marks = ",".join("?" * len(ids))
            prow = self._rows(f"SELECT run_id, key, value FROM params WHERE run_id IN ({marks}) ORDER BY run_id, key", ids)
            trow = self._rows(f"SELECT run_id, key, value FROM tags WHERE run_id IN ({marks}) ORDER BY run_id, key", ids)
        else:
            sub = f"SELECT id FROM runs {where}"
            prow = self._rows(f"SELECT run_id, key, value FROM params WHERE run_id IN ({sub}) ORDER BY run_id, key",
                              args)
            trow = self._rows(f"SELECT run_id, key, value FROM tags WHERE run_id IN ({sub}) ORDER BY run_id, key", args)
        decode = _param_decoder()
        for rid, k, v in prow:
            params.setdefault(rid, {})[k] = decode(v)
        for rid, k, v in trow:
            tags.setdefault(rid, {})[k] = v
        # system info stays JSON text until a record's .system is read
        return [RunRecord(self, r, params.get(r[0], {}), tags.get(r[0], {})) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with this prefix."""
        if not isinstance(run_id, str) or not run_id:
            raise RunNotFoundError(f"no run {run_id!r} in {self.uri}")
        recs = self._select("WHERE id=?", (run_id,))
        if recs:
            return recs[0]
        recs = self._select("WHERE id LIKE ? ESCAPE '\\'", (_like_prefix(run_id),), limit=6)
        if not recs:
            raise RunNotFoundError(f"no run {run_id!r} in {self.uri}")
        if len(recs) > 1:
            raise AmbiguousRunError(
                f"run id prefix {run_id!r} matches {len(recs)}{'+' if len(recs) > 5 else ''} runs in {self.uri}: "
                + ", ".join(r.id[:12] for r in recs[:5]))
        return recs[0]

    def runs_using(self, digest: str) -> list[RunRecord]:
        """Runs that logged a dataset with this digest (or digest prefix), oldest first."""
        return self._select("WHERE id IN (SELECT run_id FROM datasets WHERE digest LIKE ? ESCAPE '\\')",
                            (_like_prefix(digest),))

    def experiments(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT experiment FROM runs ORDER BY experiment")]

    # ---- bulk reads for listings (the UI, the CLI): one query each, whatever the number of runs ----
    def listing(self) -> list[dict[str, Any]]:
        """Every run as a small dict (id, name, experiment, status, parent_id, start_time, end_time,
        duration, archived), oldest first, without params, tags or system info."""
        import time as _time

        now = _time.time()
        out = []
        for (rid, name, exp, status, parent, start, end, pid, host, pid_start, hb, archived) in self._rows(
                "SELECT id, name, experiment, status, parent_id, start_time, end_time, pid, host, pid_start, "
                f"heartbeat, archived FROM runs ORDER BY {self._run_order}"):
            eff = effective_status(status, host, pid, pid_start, hb)
            stop = end if end is not None else (now if eff == "running" else hb)
            out.append({"id": rid, "name": name, "experiment": exp, "status": eff, "parent_id": parent,
                        "start_time": start, "end_time": end,
                        "duration": None if stop is None else max(0.0, stop - start), "archived": bool(archived)})
        return out

    def tag_values(self, key: str) -> dict[str, str]:
        """run id -> value of one tag, for every run that has it."""
        return dict(self._rows("SELECT run_id, value FROM tags WHERE key=?", (key,)))

    def param_values(self, key: str) -> dict[str, Any]:
        """run id -> value of one param, for every run that has it."""
        return {rid: _loads(v) for rid, v in self._rows("SELECT run_id, value FROM params WHERE key=?", (key,))}

    def metric_last_values(self, key: str) -> dict[str, float | None]:
        """run id -> last value of one metric (None where it was NaN), for every run that has it."""
        return dict(self._rows("SELECT run_id, last_value FROM metric_keys WHERE key=? AND n > 0", (key,)))

    def metric_run_counts(self) -> dict[str, int]:
        """metric key -> number of runs that logged it."""
        return dict(self._rows("SELECT key, COUNT(*) FROM metric_keys WHERE n > 0 GROUP BY key"))

    def params_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """run id -> params, for many runs at once."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(run_ids):
            for rid, k, v in self._rows(
                    f"SELECT run_id, key, value FROM params WHERE run_id IN ({','.join('?' * len(chunk))})", chunk):
                out.setdefault(rid, {})[k] = _loads(v)
        return out

    def metric_summaries_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """run id -> key -> summary (count, last_step, last, min, max), for many runs at once."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for chunk in _chunks(run_ids):
            for rid, k, n, ls, lv, lo, hi in self._rows(
                    "SELECT run_id, key, n, last_step, last_value, min_value, max_value FROM metric_keys "
                    f"WHERE n > 0 AND run_id IN ({','.join('?' * len(chunk))})", chunk):
                out.setdefault(rid, {})[k] = {"count": n, "last_step": ls, "last": lv, "min": lo, "max": hi}
        return out

    def live(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """run id -> {status, end_time, counts: {key: points}, media: {key: records}} for runs being
        watched."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(run_ids):
            marks = ",".join("?" * len(chunk))
            for rid, status, host, pid, pid_start, hb, end in self._rows(
                    f"SELECT id, status, host, pid, pid_start, heartbeat, end_time FROM runs WHERE id IN ({marks})",
                    chunk):
                out[rid] = {"status": effective_status(status, host, pid, pid_start, hb), "end_time": end,
                            "counts": {}}
            for rid, k, n in self._rows(f"SELECT run_id, key, n FROM metric_keys WHERE run_id IN ({marks})", chunk):
                if rid in out:
                    out[rid]["counts"][k] = n
            for rid in out:
                out[rid].setdefault("media", {})
            for rid, k, n in self._rows(f"SELECT run_id, key, COUNT(*) FROM media WHERE run_id IN ({marks}) "
                                        "GROUP BY run_id, key", chunk):
                if rid in out:
                    out[rid]["media"][k] = n
        return out

    # ---- one run (called by RunRecord) ------------------------------------------------------
    def _metric_keys(self, run_id: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT key FROM metric_keys WHERE run_id=? AND n > 0 ORDER BY key",
                                         (run_id,))]

    def _metric_summaries(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self._rows("SELECT key, n, last_step, last_value, min_value, max_value FROM metric_keys "
                          "WHERE run_id=? AND n > 0 ORDER BY key", (run_id,))
        return {k: {"count": n, "last_step": ls, "last": lv, "min": lo, "max": hi} for k, n, ls, lv, lo, hi in rows}

    def _metric_counts(self, run_id: str) -> dict[str, int]:
        """key -> points stored (keys with no point yet included), for replays."""
        return dict(self._rows("SELECT key, n FROM metric_keys WHERE run_id=? ORDER BY key", (run_id,)))

    def _series_blocks(self, run_id: str, key: str) -> list[tuple] | None:
        row = self._one("SELECT id FROM metric_keys WHERE run_id=? AND key=?", (run_id, key))
        if row is None:
            return None
        return self._rows("SELECT steps, epochs, vals, times FROM metric_blocks WHERE key_id=? ORDER BY seq", (row[0],))

    def _metric_blocks(self, run_id: str, key: str, from_seq: int = -1, limit: int | None = None) -> list[tuple]:
        """(seq, n, steps, epochs, vals, times) of one key's blocks from ``from_seq`` on (at most
        ``limit`` of them), for replays."""
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        return self._rows(
            "SELECT b.seq, b.n, b.steps, b.epochs, b.vals, b.times FROM metric_blocks b "
            "JOIN metric_keys k ON k.id = b.key_id WHERE k.run_id=? AND k.key=? AND b.seq>=? ORDER BY b.seq" + tail,
            (run_id, key, from_seq))

    def _checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        rows = self._rows(
            "SELECT path, step, epoch, metrics, best, sha256, size, monitor, mode, deleted, time FROM checkpoints "
            "WHERE run_id=? ORDER BY id", (run_id,))
        return [CheckpointRecord(p, s, e, _loads(m), bool(b), sha, size, mon, mode, bool(d), t)
                for p, s, e, m, b, sha, size, mon, mode, d, t in rows]

    def _artifacts(self, run_id: str, name: str | None = None) -> list[ArtifactRecord]:
        if name is None:
            rows = self._rows("SELECT name, sha256, size, time FROM artifacts WHERE run_id=? ORDER BY time, name",
                              (run_id,))
        else:
            rows = self._rows("SELECT name, sha256, size, time FROM artifacts WHERE run_id=? AND name=?",
                              (run_id, name))
        return [ArtifactRecord(n, self._known_file(sha), sha, size, t, self) for n, sha, size, t in rows]

    def _console(self, run_id: str) -> bytes:
        """What the run printed: its ``console.log`` artifact, then the chunks not folded into it yet
        (a run being written, or killed, or resumed)."""
        out = b""
        for a in self._artifacts(run_id, "console.log"):
            try:
                with open(a.path, "rb") as f:
                    out = f.read()
            except (OSError, TypeError):
                pass
        try:
            rows = self._rows("SELECT data FROM console WHERE run_id=? ORDER BY seq", (run_id,))
        except Exception:  # a store written before console capture existed has no such table
            rows = []
        return out + b"".join(bytes(r[0]) for r in rows)

    def _console_next_seq(self, run_id: str) -> int:
        """The seq a resumed run's console chunks start at (after those of an earlier session)."""
        try:
            row = self._one("SELECT MAX(seq) FROM console WHERE run_id=?", (run_id,))
        except Exception:
            return 0
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def _known_file(self, sha256: str) -> str | None:
        """The stored file's path when it is known without I/O (a local store), else None (fetched later)."""
        return None

    def _datasets(self, run_id: str) -> list[DatasetRecord]:
        rows = self._rows(
            "SELECT name, context, digest, schema, n_rows, source, sampled, time FROM datasets WHERE run_id=? "
            "ORDER BY time, name", (run_id,))
        return [DatasetRecord(n, c, d, _loads(s), r, src, bool(sm), t) for n, c, d, s, r, src, sm, t in rows]

    def _media_keys(self, run_id: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT key FROM media WHERE run_id=? ORDER BY key", (run_id,))]

    def _media(self, run_id: str, key: str) -> list[MediaRecord]:
        rows = self._rows("SELECT kind, step, epoch, time, data, sha256, ext, width, height FROM media "
                          "WHERE run_id=? AND key=? ORDER BY id", (run_id, key))
        return [MediaRecord(key, kind, step, epoch, t, _loads(data) if data else {}, sha, ext, w, h, self)
                for kind, step, epoch, t, data, sha, ext, w, h in rows]

    def _media_counts(self, run_id: str) -> dict[str, int]:
        """key -> number of rich records, for replays and live views."""
        return dict(self._rows("SELECT key, COUNT(*) FROM media WHERE run_id=? GROUP BY key", (run_id,)))

    def _start_order(self, run_ids: Iterable[str]) -> list[str]:
        """These run ids, parents before children (by start time)."""
        found: list[tuple] = []
        for chunk in _chunks(sorted(set(run_ids))):
            found += self._rows(f"SELECT start_time, id FROM runs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return [r[1] for r in sorted(found)]
