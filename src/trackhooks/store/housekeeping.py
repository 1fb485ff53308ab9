"""Changing and tidying a store after the fact: delete, archive, tags, name, note, and gc.

``Housekeeping`` holds the engine-neutral part (every method but ``gc``), in SQL that SQLite and
PostgreSQL both accept (``?`` placeholders, id lists as one JSON parameter through the dialect's
``json_list``); an engine supplies ``_write()`` (a ``with`` block = one write transaction, yielding
an object with ``execute``/``executemany`` taking ``?`` SQL), ``_run_tables(tx)`` and ``gc``.
``SQLiteHousekeeping`` is the SQLite engine's (mixed into ``SQLiteStore``); the PostgreSQL engine
(trackhooks-postgres) subclasses ``Housekeeping`` the same way, exported as
``trackhooks.plugin.Housekeeping``.

Every method resolves and validates all of its input before it changes anything, and makes its
change in one ``BEGIN IMMEDIATE`` transaction: a bad id, an ambiguous prefix or a live run raises
and leaves the store as it was.

Why ``gc`` cannot remove a file that is being logged: the writer copies an artifact (or media)
file into ``artifacts/`` and inserts the row that references it inside one write transaction
(``LocalStoreSink.write``), and when the file is already there it skips the copy in that same
transaction. ``gc`` lists the files and the references without a lock, then, in chunks, takes the
write lock, asks the database again which of its candidates are referenced now (one query per
chunk of 500, never one per file) and removes only the rest. Holding the lock, no writer is between
"copy" and "insert": either its row is committed (the file is kept) or it has not begun (it will
find the file gone and copy it again from its source).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping

TYPE_CHECKING = False  # typing, json and the re they load stay out of the first start_run
if TYPE_CHECKING:
    from typing import Any, Iterable

from ..errors import InvalidValueError, RunActiveError, RunNotFoundError, short_repr

GC_CHUNK = 500
TMP_GRACE_S = 3600.0  # a *.tmp copy older than this is a crashed writer's leftover


class GcResult(int):
    """``gc()``'s answer: the number of bytes freed (or, with ``dry_run``, that would be), with the
    removed (or removable) files in ``.files`` and their count in ``.count``."""

    files: list[str]

    def __new__(cls, freed: int, files: list[str], dry_run: bool):
        obj = super().__new__(cls, freed)
        obj.files = files
        obj.dry_run = dry_run
        return obj

    @property
    def count(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return f"GcResult({verb} {int(self)} bytes in {len(self.files)} files)"


def _json_arg(value: Any) -> str:
    """A JSON array for SQL's ``json_each``/``IN`` argument (json imported here, not at start-up)."""
    import json

    return json.dumps(value)


def _ids_arg(run_ids: Any) -> list[Any]:
    if isinstance(run_ids, (str, bytes)) or hasattr(run_ids, "id"):
        return [run_ids]
    try:
        return list(run_ids)
    except TypeError:
        raise InvalidValueError(f"run_ids must be run ids or RunRecords, got {short_repr(run_ids)}") from None


class Housekeeping:
    """Engine-neutral write methods of a store (needs ``run()``, ``_rows()``, ``_json_list()`` of
    ``Store``, and the engine's ``_write()`` and ``_run_tables()``)."""

    # -- helpers
    def _resolve_ids(self, run_ids: Any, missing_ok: bool = False) -> list[str]:
        refs = []
        for ref in _ids_arg(run_ids):
            if hasattr(ref, "id") and not isinstance(ref, str):
                ref = ref.id
            if not isinstance(ref, str):
                raise InvalidValueError(f"a run id is a str, got {type(ref).__name__}: {short_repr(ref)}")
            refs.append(ref)
        # whole ids in one query (rm --where of a thousand runs); prefixes one by one
        exact = {r[0] for r in self._rows(f"SELECT id FROM runs WHERE id IN {self._json_list()}",
                                          (_json_arg(refs),))}
        out: list[str] = []
        for ref in refs:
            if ref in exact:
                if ref not in out:
                    out.append(ref)
                continue
            try:
                rid = self.run(ref).id
            except RunNotFoundError:
                if missing_ok:
                    continue
                raise
            if rid not in out:
                out.append(rid)
        return out

    def _write(self):
        raise NotImplementedError(f"{type(self).__name__} cannot change its store")

    def _run_tables(self, tx: Any) -> list[str]:
        raise NotImplementedError

    def _before_delete(self, tx: Any, ids: list[str]) -> None:
        """Inside delete_runs' transaction, before the rows go (PostgreSQL keeps tombstones)."""

    def _tree(self, conn: Any, ids: list[str]) -> list[str]:
        """The runs and all their descendants (a study, its trials, their folds ...), parents first."""
        rows = conn.execute(
            f"WITH RECURSIVE tree(id, depth) AS (SELECT id, 0 FROM runs WHERE id IN {self._json_list()} "
            "UNION SELECT r.id, tree.depth + 1 FROM runs r JOIN tree ON r.parent_id = tree.id) "
            "SELECT id, MIN(depth) FROM tree GROUP BY id ORDER BY MIN(depth), id", (_json_arg(ids),)).fetchall()
        return [r[0] for r in rows]

    # -- delete / archive
    def delete_runs(self, run_ids: Any, *, missing_ok: bool = False) -> list[str]:
        """Delete runs and their children (every row: params, tags, metrics, checkpoints, artifact
        records, datasets, media, mirror cursors); returns the ids deleted, parents first.

        ``run_ids``: ids, unique id prefixes or RunRecords (one id alone is fine). An unknown id
        raises ``RunNotFoundError`` (nothing deleted) unless ``missing_ok``, so deleting twice is an
        error by default and a no-op with ``missing_ok=True``. A run (or child) whose process is
        alive raises ``RunActiveError`` and nothing is deleted. Stored files are freed by ``gc()``.
        """
        ids = self._resolve_ids(run_ids, missing_ok)
        if not ids:
            return []
        with self._write() as conn:
            tree = self._tree(conn, ids)
            self._refuse_live(conn, tree)
            self._before_delete(conn, tree)
            arg = (_json_arg(tree),)
            ids_in = self._json_list()
            conn.execute("DELETE FROM metric_blocks WHERE key_id IN (SELECT id FROM metric_keys WHERE run_id IN "
                         f"{ids_in})", arg)
            for table in self._run_tables(conn):  # names from the schema's catalogue, never user text
                conn.execute(f"DELETE FROM {table} WHERE run_id IN {ids_in}", arg)
            conn.execute(f"DELETE FROM runs WHERE id IN {ids_in}", arg)
        return tree

    def _refuse_live(self, conn: Any, ids: list[str]) -> None:
        from .status import effective_status

        rows = conn.execute(
            "SELECT id, name, status, host, pid, pid_start, heartbeat FROM runs WHERE status = 'running' AND id IN "
            f"{self._json_list()}", (_json_arg(ids),)).fetchall()
        live = [(rid, name, host, pid) for rid, name, status, host, pid, ps, hb in rows
                if effective_status(status, host, pid, ps, hb) == "running"]
        if live:
            desc = ", ".join(f"{rid[:12]} ({name!r}, pid {pid} on {host})" for rid, name, host, pid in live[:5])
            raise RunActiveError(f"cannot delete {len(live)} run(s) whose process is still alive: {desc}; "
                                 "finish or stop them first (nothing was deleted)")

    def archive_runs(self, run_ids: Any) -> list[str]:
        """Hide runs (and their children) from ``runs()``, the report and the UI unless asked for
        (``archived=True``); archiving an archived run is a no-op. Returns the ids of the tree."""
        return self._set_archived(run_ids, 1)

    def unarchive_runs(self, run_ids: Any) -> list[str]:
        """Show archived runs (and their children) again; a no-op for runs that are not archived."""
        return self._set_archived(run_ids, 0)

    def _set_archived(self, run_ids: Any, flag: int) -> list[str]:
        ids = self._resolve_ids(run_ids)
        if not ids:
            return []
        with self._write() as conn:
            tree = self._tree(conn, ids)
            conn.execute(f"UPDATE runs SET archived = ? WHERE id IN {self._json_list()}", (flag, _json_arg(tree)))
        return tree

    # -- edits of one run
    def set_tags(self, run_id: Any, tags: Mapping[str, Any]) -> None:
        """Set (replace) tags of a stored run, finished or not; values become strings as in ``run.set_tags``."""
        from ..values import check_key, tag_value

        if not isinstance(tags, Mapping):
            raise InvalidValueError(f"tags must be a mapping, got {short_repr(tags)}")
        rows = [(check_key(k, "tag key"), tag_value(k, v)) for k, v in tags.items()]
        rid = self._resolve_ids(run_id)[0]
        if rows:
            with self._write() as conn:
                conn.executemany("INSERT INTO tags (run_id, key, value) VALUES (?,?,?) "
                                 "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                                 [(rid, k, v) for k, v in rows])

    def delete_tags(self, run_id: Any, keys: Iterable[str]) -> None:
        """Remove tags of a stored run (keys it does not have are ignored)."""
        rid = self._resolve_ids(run_id)[0]
        keys = [keys] if isinstance(keys, str) else list(keys)
        with self._write() as conn:
            conn.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?", [(rid, k) for k in keys])

    def rename(self, run_id: Any, name: str) -> None:
        """Give a stored run a new name."""
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise InvalidValueError(f"a run name is a non-empty str without NUL, got {short_repr(name)}")
        rid = self._resolve_ids(run_id)[0]
        with self._write() as conn:
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, rid))

    def set_note(self, run_id: Any, text: str | None) -> None:
        """Replace the run's note (markdown); None or "" removes it."""
        if text is not None and not isinstance(text, str):
            raise InvalidValueError(f"a note is a str, got {type(text).__name__}: {short_repr(text)}")
        rid = self._resolve_ids(run_id)[0]
        with self._write() as conn:
            conn.execute("UPDATE runs SET note = ? WHERE id = ?", (text or None, rid))

    def gc(self, *, dry_run: bool = False) -> GcResult:
        raise NotImplementedError

    # -- gc of a directory of content-addressed files (sha256[:2]/sha256)
    def _referenced(self, conn: Any, shas: list[str] | None) -> set[str]:
        raise NotImplementedError

    def _gc_dir(self, root: str, refs: set[str], dry_run: bool) -> GcResult:
        """Remove the files under ``root`` that no record references (``refs`` read without a lock,
        each candidate checked again under the write lock, see the module docstring)."""
        now = time.time()
        candidates: list[tuple[str, str, int]] = []  # (path, sha256, size)
        try:
            subdirs = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            subdirs = []
        for sub in subdirs:
            try:
                entries = list(os.scandir(sub.path))
            except FileNotFoundError:
                continue
            for e in entries:
                name = e.name
                tmp = name.endswith(".tmp")
                if not tmp and name in refs:
                    continue
                try:
                    if not e.is_file(follow_symlinks=False):
                        continue
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # a writer's temporary copy renamed into place meanwhile
                if tmp:
                    if now - st.st_mtime > TMP_GRACE_S:
                        candidates.append((e.path, "", st.st_size))
                else:
                    candidates.append((e.path, name, st.st_size))
        if dry_run:
            return GcResult(sum(c[2] for c in candidates), [c[0] for c in candidates], True)
        freed, removed = 0, []
        for i in range(0, len(candidates), GC_CHUNK):
            chunk = candidates[i:i + GC_CHUNK]
            hook = getattr(self, "_gc_before_lock", None)
            if hook is not None:
                hook(chunk)  # tests: make a writer commit between the scan and the check
            with self._write() as wconn:
                now_refs = self._referenced(wconn, [sha for _, sha, _ in chunk if sha])
                for path, sha, size in chunk:
                    if sha and sha in now_refs:
                        continue
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        continue
                    freed += size
                    removed.append(path)
        return GcResult(freed, removed, False)


class SQLiteHousekeeping(Housekeeping):
    """Write methods of the SQLite engine (needs ``path``, ``db_path``, ``run()`` and ``_db()``)."""

    def _write(self):
        return _Tx(self._db())

    def _run_tables(self, tx: Any) -> list[str]:
        return _run_tables(tx)

    def _referenced(self, conn: Any, shas: list[str] | None) -> set[str]:
        return _referenced(conn, shas)

    def gc(self, *, dry_run: bool = False) -> GcResult:
        """Remove files under ``artifacts/`` that no artifact or media record references; returns the
        bytes freed (a ``GcResult``: an int with ``.files``). Safe while other processes write (see
        the module docstring); ``dry_run`` only reports what would go."""
        return self._gc_dir(os.path.join(self.path, "artifacts"), _referenced(self._db(), None), dry_run)


def _run_tables(conn: sqlite3.Connection) -> list[str]:
    """Every table with a run_id column (params, tags, metric_keys, checkpoints, artifacts, datasets,
    media, mirror_cursors, and whatever a later schema adds)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = []
    for name in names:
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
        if "run_id" in cols:
            out.append(name)
    # metric_keys after metric_blocks (deleted through it) is handled by the caller; order is free here
    return out


def _referenced(conn: sqlite3.Connection, shas: list[str] | None) -> set[str]:
    """The sha256 of stored files that records reference (all, or those among ``shas``)."""
    tables = ["artifacts"]
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "media" in names and "sha256" in {r[1] for r in conn.execute('PRAGMA table_info("media")')}:
        tables.append("media")
    out: set[str] = set()
    for table in tables:
        if shas is None:
            out.update(r[0] for r in conn.execute(f"SELECT DISTINCT sha256 FROM {table} WHERE sha256 IS NOT NULL"))
        elif shas:
            out.update(r[0] for r in conn.execute(
                f"SELECT DISTINCT sha256 FROM {table} WHERE sha256 IN (SELECT value FROM json_each(?))",
                (_json_arg(shas),)))
    return out


class _Tx:
    """``with`` block = one BEGIN IMMEDIATE transaction on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
