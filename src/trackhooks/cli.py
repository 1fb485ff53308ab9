"""The ``trackhooks`` command line: runs, show, compare, export, report, sync, and housekeeping
(rm, archive, unarchive, gc, tag, rename, note) and read-only ``query``.

Tables and colours come from ``rich``, imported only here (``import trackhooks`` never loads it).
Every user string shown in a terminal goes through ``summaries.clean`` (no escape-sequence
injection from a run name) and is wrapped in ``rich.text.Text`` (no markup interpretation).
Errors the user can fix print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import summaries as sm
from .errors import TrackhooksError

if TYPE_CHECKING:  # pragma: no cover
    from .store import RunRecord, Store

PROG = "trackhooks"
STATUSES = ("running", "finished", "failed", "killed")
STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "bold red", "killed": "bold magenta"}


class CliError(Exception):
    """A problem the user can fix: printed as one line on stderr, exit status 1."""


# ---- output ----------------------------------------------------------------------------------


#: the width piped output is laid out in: rows are never cut for a pipe (tests, ``| less``, ``> file``),
#: whatever $COLUMNS an inherited environment says; trailing blanks are stripped
PIPE_WIDTH = 100_000


class _Out:
    """A rich console on stdout. Piped output gets whole rows, and no trailing blanks from cell padding.

    In a terminal, a table never truncates the columns that name things (ids, names, statuses, keys:
    ``_table(keep=...)``): the other columns wrap first, and when the kept columns alone do not fit,
    the table is printed wider than the terminal (the terminal wraps the line) rather than cut."""

    def __init__(self) -> None:
        try:
            from rich.console import Console
        except ImportError:  # pragma: no cover - rich is a dependency of the core
            raise CliError("the command line needs the 'rich' package: pip install rich") from None
        self.tty = sys.stdout.isatty()
        self._buf = None if self.tty else io.StringIO()
        width = None if self.tty else PIPE_WIDTH
        self.console = Console(file=sys.stdout if self.tty else self._buf, width=width, markup=False,
                               highlight=False, emoji=False, soft_wrap=False)

    def print(self, *objects: Any, **kw: Any) -> None:
        from rich.table import Table

        width = self.console.width
        for obj in objects:
            if isinstance(obj, Table):
                width = max(width, _keep_whole(obj, self.console))
        if width == self.console.width:
            self.console.print(*objects, **kw)
            return
        saved, self.console.width = self.console.width, width  # print(width=) cannot exceed it
        try:
            self.console.print(*objects, **kw)
        finally:
            self.console.width = saved

    def __enter__(self) -> "_Out":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._buf is not None:
            sys.stdout.write("\n".join(line.rstrip() for line in self._buf.getvalue().split("\n")))
            sys.stdout.flush()


def _console() -> _Out:
    return _Out()


def _text(value: Any, style: str = ""):
    from rich.text import Text

    return Text(sm.clean(value), style=style)


def _table(title: str | None = None, *columns: str, keep: Sequence[str] = (), **kw: Any):
    """A table whose ``keep`` columns are never wrapped or cut; every other column wraps (folds)
    instead of ending in an ellipsis, so no cell ever loses characters."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
              header_style="bold", pad_edge=False, show_edge=False, **kw)
    for c in columns:
        t.add_column(c, overflow="fold")
    for c in keep:
        _keep(t.columns[list(columns).index(c)])
    return t


def _keep(column: Any) -> None:
    column.no_wrap = True
    column.overflow = "ignore"
    column._trackhooks_keep = True


def _keep_whole(table: Any, console: Any) -> int:
    """Give each kept column of ``table`` the width of its widest cell; return the width the table
    needs with every kept column whole and every other column at its narrowest."""
    from rich.cells import cell_len

    needed = 0
    for column in table.columns:
        cells = [column.header, *column._cells]
        widest = max((cell_len(line) for c in cells for line in _plain(c).split("\n")), default=0)
        if getattr(column, "_trackhooks_keep", False):
            column.min_width = widest
            needed += widest
        else:  # a folding column keeps at least a readable strip
            column.min_width = max(column.min_width or 0, min(widest, FOLD_MIN_WIDTH))
            needed += column.min_width
    # a cell's padding and the gap between columns (box.SIMPLE_HEAD without edges)
    return needed + 3 * (len(table.columns) - 1)


FOLD_MIN_WIDTH = 5  # with it, id + a typical name + status + 5 folding columns fit 80 columns


def _plain(cell: Any) -> str:
    return cell.plain if hasattr(cell, "plain") else str(cell)


def _status(status: str):
    return _text(status, STATUS_STYLE.get(status, ""))


def _print_json(data: Any) -> None:
    json.dump(sm.jsonable(data), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def _warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {sm.clean(message)}\n")


# ---- store access ----------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> "Store":
    from .store import open_store

    return open_store(args.store)


def _no_runs_yet(store: "Store") -> None:
    if not store.listing():
        raise CliError(f"the store {store.uri} has no runs yet (log one with trackhooks.start_run)")


def _all_runs(store: "Store", archived: bool = False) -> list["RunRecord"]:
    """Every run (archived ones only when asked for); an empty store is an error."""
    _no_runs_yet(store)
    return store.runs(archived=archived)


def _resolve(store: "Store", ref: str) -> "RunRecord":
    from .errors import RunNotFoundError

    try:
        return store.run(ref)
    except RunNotFoundError:
        _no_runs_yet(store)  # an empty store says so instead of "no run X"
        raise


def _headline(rec: "RunRecord") -> list[tuple[str, float | None]]:
    return [(k, sm.last_value(rec, k)) for k in sm.headline_keys(rec.metric_keys())]


def _headline_text(rec: "RunRecord") -> str:
    return "  ".join(f"{k}={sm.fmt_num(v)}" for k, v in _headline(rec))


def _nested(recs: list["RunRecord"]) -> list[tuple["RunRecord", int]]:
    """Runs in start order with each child right after its parent (depth for indentation)."""
    ids = {r.id for r in recs}
    kids: dict[str, list["RunRecord"]] = {}
    roots = []
    for r in recs:
        if r.parent_id in ids and r.parent_id != r.id:
            kids.setdefault(r.parent_id, []).append(r)
        else:
            roots.append(r)
    out: list[tuple["RunRecord", int]] = []
    seen: set[str] = set()

    def walk(r: "RunRecord", depth: int) -> None:
        if r.id in seen:
            return
        seen.add(r.id)
        out.append((r, depth))
        for c in kids.get(r.id, []):
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    for r in recs:  # parent cycles cannot happen through the API, but never drop a run
        walk(r, 0)
    return out


# ---- runs ------------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    store = _open(args)
    recs = store.runs(args.experiment, args.status, where=args.where, order_by=args.sort, limit=args.limit,
                      archived=True if args.archived else False)
    if args.dataset is not None:
        using = {r.id for r in store.runs_using(args.dataset)}
        recs = [r for r in recs if r.id in using]
    if args.json:
        _print_json([sm.run_brief(r) for r in recs])
        return 0
    if not recs:
        total = len(store.listing())
        if not total:
            raise CliError(f"the store {store.uri} has no runs yet (log one with trackhooks.start_run)")
        filters = ", ".join(f"{n}={getattr(args, n)!r}" for n in ("experiment", "status", "dataset", "where")
                            if getattr(args, n) is not None)
        hidden = "" if args.archived else ", archived runs hidden (--archived shows them)"
        sys.stderr.write(f"{PROG}: no runs match {filters or 'the filters'} ({total} runs in {store.uri}{hidden})\n")
        return 0
    short = sm.short_ids(r["id"] for r in store.listing())
    t = _table(None, "id", "experiment", "name", "status", "start", "duration", "framework", "metrics",
               keep=("id", "name", "status"))
    # a sorted listing keeps its order; otherwise children sit under their parent
    rows = [(r, 0) for r in recs] if args.sort else _nested(recs)
    for r, depth in rows:
        name = ("  " * (depth - 1) + "└ " if depth else "") + sm.clean(r.name)
        if getattr(r, "archived", False):
            name += " (archived)"
        t.add_row(_text(short[r.id], "dim" if depth else "bold"), _text(r.experiment), _text(name),
                  _status(r.status), sm.fmt_time(r.start_time), sm.fmt_duration(r.duration),
                  _text(r.tags.get("framework", "")), _text(_headline_text(r)))
    with _console() as con:
        con.print(t)
        con.print(f"{len(recs)} run{'s' if len(recs) != 1 else ''} in {sm.clean(store.uri)}", style="dim")
    return 0


# ---- housekeeping ----------------------------------------------------------------------------


def _targets(store: "Store", args: argparse.Namespace) -> list["RunRecord"]:
    """The runs named on the command line plus those ``--where`` selects (archived included)."""
    out: dict[str, "RunRecord"] = {}
    for ref in args.runs:
        rec = _resolve(store, ref)
        out.setdefault(rec.id, rec)
    if args.where is not None:
        for rec in store.runs(where=args.where, archived=True):
            out.setdefault(rec.id, rec)
    if not args.runs and args.where is None:
        raise CliError(f"name the runs (RUN... or --where EXPR) for {args.command}")
    if not out:
        raise CliError(f"no run matches --where {args.where!r}")
    return list(out.values())


def _with_children(recs: list["RunRecord"]) -> list["RunRecord"]:
    out: dict[str, "RunRecord"] = {}
    todo = list(recs)
    while todo:
        r = todo.pop(0)
        if r.id in out:
            continue
        out[r.id] = r
        todo.extend(r.children())
    return list(out.values())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def cmd_rm(args: argparse.Namespace) -> int:
    store = _open(args)
    recs = _with_children(_targets(store, args))
    if not args.yes:
        if args.json:
            _print_json({"would_delete": [sm.run_brief(r, with_metrics=False) for r in recs], "deleted": []})
        else:
            t = _table(None, "id", "experiment", "name", "status", "start")
            for r in recs:
                t.add_row(_text(r.id[:12], "bold"), _text(r.experiment), _text(sm.clean(r.name)), _status(r.status),
                          sm.fmt_time(r.start_time))
            with _console() as con:
                con.print(t)
            sys.stderr.write(f"{PROG}: would delete {_plural(len(recs), 'run')} (children included); "
                             "run again with --yes to delete them\n")
        return 1
    deleted = store.delete_runs([r.id for r in recs])
    if args.json:
        _print_json({"would_delete": [], "deleted": deleted})
    else:
        print(f"deleted {_plural(len(deleted), 'run')}; `{PROG} gc` frees their stored files")
    return 0


def _archive(args: argparse.Namespace, flag: bool) -> int:
    store = _open(args)
    recs = _targets(store, args)
    ids = store.archive_runs([r.id for r in recs]) if flag else store.unarchive_runs([r.id for r in recs])
    if args.json:
        _print_json({"archived" if flag else "unarchived": ids})
    else:
        print(f"{'archived' if flag else 'unarchived'} {_plural(len(ids), 'run')} (children included)")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    return _archive(args, True)


def cmd_unarchive(args: argparse.Namespace) -> int:
    return _archive(args, False)


def cmd_gc(args: argparse.Namespace) -> int:
    store = _open(args)
    result = store.gc(dry_run=args.dry_run)
    if args.json:
        _print_json({"dry_run": args.dry_run, "files": result.count, "bytes": int(result)})
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {_plural(result.count, 'unreferenced file')} ({sm.fmt_size(int(result))})")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    store = _open(args)
    rec = _resolve(store, args.run)
    tags: dict[str, str] = {}
    for item in args.tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"tags are written KEY=VALUE, got {item!r}")
        tags[key] = value
    store.set_tags(rec.id, tags)
    if args.delete:
        store.delete_tags(rec.id, args.delete)
    if args.json:
        _print_json({"id": rec.id, "tags": store.run(rec.id).tags})
    else:
        print(f"tagged {rec.id[:12]}: " + ", ".join(f"{k}={v}" for k, v in tags.items())
              + (f"; removed {', '.join(args.delete)}" if args.delete else ""))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    store = _open(args)
    rec = _resolve(store, args.run)
    store.rename(rec.id, args.name)
    if args.json:
        _print_json({"id": rec.id, "name": args.name, "old_name": rec.name})
    else:
        print(f"renamed {rec.id[:12]}: {sm.clean(rec.name)} -> {sm.clean(args.name)}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    store = _open(args)
    rec = _resolve(store, args.run)
    text = sys.stdin.read() if args.text == "-" else args.text
    store.set_note(rec.id, text)
    if args.json:
        _print_json({"id": rec.id, "note": text or None})
    else:
        print(f"{'noted' if text else 'removed the note of'} {rec.id[:12]}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    store = _open(args)
    result = store.query(args.sql, limit=args.limit, timeout_s=args.timeout)
    if args.json:
        _print_json(result.to_json())
        return 0
    t = _table(None, *result.columns)
    for row in result:
        t.add_row(*[_text(sm.clean("" if v is None else (sm.fmt_num(v) if isinstance(v, float) else str(v))))
                    for v in row])
    with _console() as con:
        con.print(t)
        more = f" (row limit {args.limit}: more rows exist)" if result.truncated else ""
        con.print(f"{_plural(len(result), 'row')}{more}", style="dim")
    return 0


# ---- show ------------------------------------------------------------------------------------


def _checkpoint_json(c: Any) -> dict[str, Any]:
    return {"path": c.path, "step": c.step, "epoch": c.epoch, "metrics": sm.jsonable(c.metrics), "best": c.best,
            "deleted": c.deleted, "exists": c.exists, "monitor": c.monitor, "mode": c.mode, "size": c.size,
            "sha256": c.sha256, "time": c.time}


def _dataset_json(d: Any) -> dict[str, Any]:
    return {"name": d.name, "context": d.context, "digest": d.digest, "schema": d.schema, "n_rows": d.n_rows,
            "source": d.source, "sampled": d.sampled, "time": d.time}


def _media_json(m: Any) -> dict[str, Any]:
    return {"key": m.key, "kind": m.kind, "step": m.step, "epoch": m.epoch, "timestamp": m.timestamp,
            "path": m.path, "width": m.width, "height": m.height, "data": m.data}


def _media_summary(rec: "RunRecord") -> dict[str, dict[str, Any]]:
    """key -> kind, count and step range of its rich records."""
    out: dict[str, dict[str, Any]] = {}
    for key in rec.media_keys():
        records = rec.media(key)
        if records:
            steps = [m.step for m in records]
            out[key] = {"kind": records[-1].kind, "count": len(records), "min_step": min(steps),
                        "max_step": max(steps)}
    return out


def run_details(rec: "RunRecord") -> dict[str, Any]:
    """Everything ``show`` prints, as JSON-ready data."""
    out = sm.run_brief(rec, with_metrics=False)
    out["note"] = rec.note
    out["system"] = rec.system
    out["datasets"] = [_dataset_json(d) for d in rec.datasets()]
    out["metrics"] = {k: sm.summarize(rec, k).to_json() for k in rec.metric_keys()}
    out["checkpoints"] = [_checkpoint_json(c) for c in rec.checkpoints()]
    out["media"] = _media_summary(rec)
    out["artifacts"] = [{"name": a.name, "path": a.path, "size": a.size, "sha256": a.sha256, "time": a.time}
                        for a in rec.artifacts()]
    out["children"] = [sm.run_brief(c) for c in rec.children()]
    if sm.is_study(rec):
        out["study"] = sm.study_view(rec)
    return out


def _kv_table(title: str, mapping: dict[str, Any]):
    t = _table(title, "key", "value", keep=("key",))
    for k, v in mapping.items():
        t.add_row(_text(k), _text(sm.fmt_value(v)))
    return t


def _trials_table(rec: "RunRecord", short: dict[str, str]):
    """A study's trials, best first (sorted by value in the study's direction)."""
    view = sm.study_view(rec)
    multi = len(view["directions"]) > 1
    t = _table(f"trials ({', '.join(view['directions'])}; best first)", "", "#", "id", "state", "values" if multi
               else "value", "params", "duration")
    for c in (1, 4, 6):
        t.columns[c].justify = "right"
    best = set(view["best"])
    for tr in view["trials"]:
        flag = _text("★", "bold green") if tr["number"] in best else _text("")
        state = tr["state"].lower()
        style = {"complete": "green", "pruned": "yellow", "fail": "red"}.get(state, "")
        if multi:
            value = ", ".join(sm.fmt_num(v) for v in tr["values"]) if tr["values"] else ""
        else:
            value = sm.fmt_num(tr["value"]) if tr["value"] is not None else ""
        params = "  ".join(f"{k}={sm.fmt_value(v)}" for k, v in tr["params"].items())
        t.add_row(flag, str(tr["number"]), _text(short.get(tr["id"], tr["id"][:8])), _text(state, style),
                  value, _text(params), sm.fmt_duration(tr["duration"]))
    return t


_SGR = re.compile(r"\x1b\[[0-9;]*m")


def console_for_terminal(data: bytes) -> str:
    """A run's console output made safe for a terminal: colours kept, every other control
    character (cursor moves, title changes) shown escaped."""
    out = []
    for line in data.decode("utf-8", "replace").split("\n"):
        parts = _SGR.split(line)
        codes = _SGR.findall(line)
        text = sm.clean(parts[0].replace("\t", "    "))
        for code, part in zip(codes, parts[1:]):
            text += code + sm.clean(part.replace("\t", "    "))
        out.append(text)
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    store = _open(args)
    rec = _resolve(store, args.run)
    if getattr(args, "console", False):
        data = rec.console()
        if args.json:
            _print_json({"id": rec.id, "console": data.decode("utf-8", "replace")})
        elif sys.stdout.isatty():
            sys.stdout.write(console_for_terminal(data) + ("\x1b[0m" if b"\x1b[" in data else ""))
            sys.stdout.flush()
        else:  # to a file or a pager: the bytes as the program wrote them
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return 0
    if args.json:
        _print_json(run_details(rec))
        return 0
    with _console() as con:
        _show(con, store, rec)
    return 0


def _note_text(note: str):
    """The note as plain text under a "note" title: the Markdown source, each line made terminal-safe
    (control characters shown escaped, tabs as spaces), indented like the facts above it."""
    from rich.text import Text

    out = Text("note", style="bold")
    for line in note.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        out.append("\n  " + sm.clean(line.replace("\t", "    ")))
    return out


def _show(con: _Out, store: "Store", rec: "RunRecord") -> None:
    from rich.text import Text

    head = Text()
    head.append("run ", style="bold")
    head.append(rec.id, style="bold")
    head.append("  ")
    head.append(sm.clean(rec.name), style="bold cyan")
    head.append("  ")
    head.append(rec.status, style=STATUS_STYLE.get(rec.status, ""))
    con.print(head)
    facts = [("experiment", rec.experiment), ("framework", rec.tags.get("framework")),
             ("parent", rec.parent_id), ("start", sm.fmt_time(rec.start_time)),
             ("end", sm.fmt_time(rec.end_time) if rec.end_time else None),
             ("duration", sm.fmt_duration(rec.duration))]
    for k, v in facts:
        if v is not None:
            con.print(Text(f"  {k:<11}", style="dim") + _text(v))
    con.print()

    def section(title: str, empty: str, renderable: Any | None) -> None:
        if renderable is None:
            con.print(Text(title, style="bold") + Text(f"  ({empty})", style="dim"))
            con.print()
        else:
            con.print(renderable)
            con.print()

    if rec.note:
        section("note", "", _note_text(rec.note))
    section("params", "none", _kv_table("params", rec.params) if rec.params else None)
    section("tags", "none", _kv_table("tags", rec.tags) if rec.tags else None)

    datasets = rec.datasets()
    if datasets:
        t = _table("datasets", "context", "name", "digest", "rows", "schema", "source",
                   keep=("context", "name", "digest", "rows"))
        for d in datasets:
            digest = d.digest[:16] + (" (sampled)" if d.sampled else "")
            t.add_row(_text(d.context), _text(d.name), _text(digest), sm.fmt_num(d.n_rows),
                      _text(sm.schema_text(d.schema, d.n_rows)), _text(d.source or ""))
        section("datasets", "", t)
    else:
        section("datasets", "none recorded", None)

    keys = rec.metric_keys()
    if keys:
        t = _table("metrics", "key", "count", "last", "min", "max", "steps", "epochs",
                   keep=("key", "count", "last", "min", "max"))
        for c in ("count", "last", "min", "max"):
            t.columns[["key", "count", "last", "min", "max"].index(c)].justify = "right"
        for k in keys:
            s = sm.summarize(rec, k)
            t.add_row(_text(k), str(s.count), sm.fmt_num(s.last), sm.fmt_num(s.min), sm.fmt_num(s.max),
                      sm.fmt_steps(s.min_step, s.max_step), sm.fmt_steps(s.min_epoch, s.max_epoch))
        section("metrics", "", t)
    else:
        section("metrics", "none", None)

    media = _media_summary(rec)
    if media:
        t = _table("media", "key", "kind", "count", "steps")
        t.columns[2].justify = "right"
        for k, m in media.items():
            t.add_row(_text(k), _text(m["kind"].replace("_", " ")), str(m["count"]),
                      sm.fmt_steps(m["min_step"], m["max_step"]))
        section("media", "", t)

    ckpts = rec.checkpoints()
    if ckpts:
        t = _table("checkpoints", "", "path", "step", "epoch", "metrics", "size", "sha256",
                   keep=("", "step", "epoch", "size", "sha256"))
        for c in ckpts:
            flag = Text()
            if c.best:
                flag.append("★ best", style="bold green")
            if c.deleted:
                flag.append((" " if c.best else "") + "deleted", style="red")
            elif not c.exists:
                flag.append((" " if c.best else "") + "missing", style="yellow")
            metrics = "  ".join(f"{k}={sm.fmt_num(v)}" for k, v in c.metrics.items())
            t.add_row(flag, _text(c.path, "strike dim" if c.deleted else ""), sm.fmt_num(c.step),
                      sm.fmt_num(c.epoch), _text(metrics), sm.fmt_size(c.size), (c.sha256 or "")[:12])
        section("checkpoints", "", t)
    else:
        section("checkpoints", "none", None)

    arts = rec.artifacts()
    if arts:
        t = _table("artifacts", "name", "size", "sha256", "stored at", keep=("name", "size", "sha256"))
        for a in arts:
            t.add_row(_text(a.name), sm.fmt_size(a.size), a.sha256[:12], _text(a.path))
        section("artifacts", "", t)
    else:
        section("artifacts", "none", None)

    kids = rec.children()
    if kids and sm.is_study(rec):
        section("trials", "", _trials_table(rec, sm.short_ids(r["id"] for r in store.listing())))
    elif kids:
        short = sm.short_ids(r["id"] for r in store.listing())
        t = _table("children", "id", "name", "status", "duration", "metrics",
                   keep=("id", "name", "status", "duration"))
        for c in kids:
            t.add_row(_text(short.get(c.id, c.id[:8])), _text(c.name), _status(c.status),
                      sm.fmt_duration(c.duration), _text(_headline_text(c)))
        section("children", "", t)

    if rec.system:
        section("system", "", _kv_table("system", sm.flatten(rec.system)))
    else:
        section("system", "not recorded", None)


# ---- compare ---------------------------------------------------------------------------------


def comparison(recs: list["RunRecord"]) -> dict[str, Any]:
    """Differing params, shared metrics with last/min/max and the best run per metric, warnings."""
    ids = [r.id for r in recs]
    param_keys = sorted({k for r in recs for k in r.params})
    params: dict[str, dict[str, Any]] = {}
    missing = object()
    for k in param_keys:
        vals = [r.params.get(k, missing) for r in recs]
        if any(v is missing for v in vals) or len({json.dumps(v, sort_keys=True, default=str) for v in vals}) > 1:
            params[k] = {rid: (None if v is missing else v) for rid, v in zip(ids, vals)}
    keysets = [set(r.metric_keys()) for r in recs]
    counts: dict[str, int] = {}
    for ks in keysets:
        for k in ks:
            counts[k] = counts.get(k, 0) + 1
    shared_min = 2 if len(recs) > 1 else 1
    metrics: dict[str, Any] = {}
    for k in sorted(k for k, n in counts.items() if n >= shared_min):
        per: dict[str, Any] = {}
        lasts: list[float | None] = []
        for r, ks in zip(recs, keysets):
            if k in ks:
                s = sm.summarize(r, k)
                per[r.id] = {"last": s.last, "min": s.min, "max": s.max, "count": s.count}
                lasts.append(s.last)
            else:
                per[r.id] = None
                lasts.append(None)
        direction = sm.metric_direction(k)
        best = sm.best_index(lasts, direction)
        metrics[k] = {"direction": direction, "best": ids[best] if best is not None else None, "runs": per}
    only = {r.id: sorted(k for k in ks if counts[k] < shared_min) for r, ks in zip(recs, keysets)}
    warnings = []
    w = sm.training_data_warning(recs)
    if w:
        warnings.append(w)
    return {"runs": [sm.run_brief(r, with_metrics=False) for r in recs], "params": params, "metrics": metrics,
            "only_in": {k: v for k, v in only.items() if v}, "warnings": warnings,
            "best_rule": "best = best last value; lower is better for loss/error-like keys, higher otherwise"}


def cmd_compare(args: argparse.Namespace) -> int:
    store = _open(args)
    recs = [_resolve(store, ref) for ref in args.runs]
    if len(recs) < 2:
        raise CliError("compare needs at least two runs")
    data = comparison(recs)
    for w in data["warnings"]:
        _warn(w)
    if args.json:
        _print_json(data)
        return 0
    with _console() as con:
        _compare(con, store, recs, data)
    return 0


def _compare(con: _Out, store: "Store", recs: list["RunRecord"], data: dict[str, Any]) -> None:
    from rich.cells import cell_len
    from rich.text import Text

    short = sm.short_ids(r["id"] for r in store.listing())
    cols = [f"{short.get(r.id, r.id[:8])}" for r in recs]

    def header_table(title: str, first: str):
        t = _table(title, first, keep=(first,))
        for r, c in zip(recs, cols):
            # the header (id, name) is kept whole; the values under it fold
            t.add_column(Text(c, style="bold") + Text("\n" + sm.clean(r.name), style="cyan"), overflow="fold",
                         min_width=max(len(c), cell_len(sm.clean(r.name))))
        return t

    t = header_table("runs", "")
    t.add_row(_text("experiment", "dim"), *[_text(r.experiment) for r in recs])
    t.add_row(_text("framework", "dim"), *[_text(r.tags.get("framework", "—")) for r in recs])
    t.add_row(_text("status", "dim"), *[_status(r.status) for r in recs])
    t.add_row(_text("duration", "dim"), *[sm.fmt_duration(r.duration) for r in recs])
    con.print(t)
    con.print()

    if data["params"]:
        # keys one run alone has (typical across frameworks) would fill the table with dashes
        owners = {k: [r for r in recs if k in r.params] for k in data["params"]}
        shared = [k for k in data["params"] if len(owners[k]) > 1 or len(recs) == 2]
        if shared:
            t = header_table("params that differ", "param")
            for k in shared:
                t.add_row(_text(k), *[_text(sm.fmt_value(r.params[k])) if k in r.params else _text("—", "dim")
                                      for r in recs])
            con.print(t)
        for r in recs:
            own = [f"{k}={sm.fmt_value(r.params[k])}" for k in data["params"] if k not in shared
                   and owners[k] == [r]]
            if own:
                con.print(Text(f"{len(own)} params only in {short.get(r.id, r.id[:8])}: ", style="dim")
                          + _text(sm.some(own, 6), "dim"))
        con.print()
    else:
        n = len({k for r in recs for k in r.params})
        con.print(Text("params", style="bold") + Text(f"  (all {n} params are equal)", style="dim"))
        con.print()

    if data["metrics"]:
        t = header_table("metrics", "metric")
        for k, m in data["metrics"].items():
            arrow = {"min": " ↓", "max": " ↑"}.get(m["direction"], "")
            cells = []
            for r in recs:
                s = m["runs"][r.id]
                if s is None:
                    cells.append(_text("—", "dim"))
                    continue
                is_best = m["best"] == r.id
                cell = Text(sm.fmt_num(s["last"]) + (" ★" if is_best else ""), style="bold green" if is_best else "")
                cell.append(f"\n{sm.fmt_num(s['min'])} / {sm.fmt_num(s['max'])}", style="dim")
                cells.append(cell)
            t.add_row(_text(k) + Text(arrow, style="dim"), *cells)
        con.print(t)
        con.print(Text("last value, then min / max; ★ best last value (↓ lower is better, ↑ higher)", style="dim"))
    else:
        con.print(Text("metrics", style="bold") + Text("  (no metric is shared by two of these runs)", style="dim"))
    for rid, keys in data["only_in"].items():
        con.print(Text(f"{len(keys)} metrics only in {short.get(rid, rid[:8])}: ", style="dim")
                  + _text(sm.some(keys, 8), "dim"))


# ---- export ----------------------------------------------------------------------------------

CSV_COLUMNS = ["run_id", "key", "step", "epoch", "value", "timestamp", "text"]


def _write_csv(rec: "RunRecord", out: io.TextIOBase) -> None:
    # One tidy table that pandas reads without options: metric points first (text empty), then
    # one row per param ("param.<key>") and tag ("tag.<key>"), whose value column holds the number
    # when the param is numeric and whose text column holds the value as written.
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for key in rec.metric_keys():
        s = rec.metric(key)
        for step, epoch, value, ts in s:
            w.writerow([rec.id, key, step, "" if epoch is None else epoch, repr(value), repr(ts), ""])
    for k, v in rec.params.items():
        num = repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        w.writerow([rec.id, f"param.{k}", "", "", num, "", sm.fmt_value(v)])
    for k, v in rec.tags.items():
        w.writerow([rec.id, f"tag.{k}", "", "", "", "", v])


def export_json(rec: "RunRecord") -> dict[str, Any]:
    data = run_details(rec)
    data.pop("children", None)
    data["children"] = [c.id for c in rec.children()]
    data["metrics"] = {}
    for key in rec.metric_keys():
        s = rec.metric(key)
        data["metrics"][key] = {"steps": s.steps, "epochs": s.epochs, "values": s.values, "timestamps": s.timestamps}
    # rich records: data inline, image/figure files by their path in the store
    data["media"] = {key: [_media_json(m) for m in rec.media(key)] for key in rec.media_keys()}
    return data


def cmd_export(args: argparse.Namespace) -> int:
    store = _open(args)
    rec = _resolve(store, args.run)
    target = args.output
    buf = io.StringIO()
    if args.format == "csv":
        _write_csv(rec, buf)
    else:
        json.dump(sm.jsonable(export_json(rec)), buf, ensure_ascii=False, allow_nan=False)
        buf.write("\n")
    if target in (None, "-"):
        sys.stdout.write(buf.getvalue())
        return 0
    _write_file(target, buf.getvalue())
    n = sum(len(rec.metric(k)) for k in rec.metric_keys())
    if args.json:
        _print_json({"path": os.path.abspath(target), "format": args.format, "points": n})
    else:
        sys.stderr.write(f"wrote {n} points of run {rec.id[:8]} to {target}\n")
    return 0


def _write_file(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"cannot write {path}: directory {directory} does not exist")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- report ----------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {n}")
    return n


def _non_negative_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return x


def cmd_report(args: argparse.Namespace) -> int:
    store = _open(args)
    every = _all_runs(store, archived=args.archived)
    if args.runs:
        recs = [_resolve(store, ref) for ref in args.runs]
        if args.experiment is not None:
            recs = [r for r in recs if r.experiment == args.experiment]
    elif args.experiment is not None:
        recs = [r for r in every if r.experiment == args.experiment]
        if not recs:
            raise CliError(f"no runs of experiment {args.experiment!r} in {store.uri} "
                           f"(experiments: {', '.join(store.experiments())})")
    else:
        recs = every
    if not recs:
        raise CliError("no runs selected for the report")
    from .report import build_report

    steps = None if args.max_images is None else {"image": args.max_images, "figure": args.max_images}
    html, info = build_report(recs, store_path=store.uri, title=args.title, media_steps=steps,
                              max_image_bytes=int(args.max_image_mb * 2**20))
    _write_file(args.output, html)
    path = os.path.abspath(args.output)
    if args.json:
        _print_json({"path": path, **info})
    else:
        media = info["media"]
        extra = ""
        if media["keys"]:
            extra = f", {media['keys']} media keys, {media['images_embedded']} images embedded"
            if media["images_left_out"]:
                extra += f" ({media['images_left_out']} left out by --max-image-mb)"
        sys.stdout.write(f"wrote {path} ({info['runs']} runs, {info['charts']} charts{extra}); open it in a browser\n")
        if media["thinned"]:
            more = f" and {len(media['thinned']) - 8} more" if len(media["thinned"]) > 8 else ""
            _warn(f"long media sequences are shown in part (evenly spaced records, the last kept; "
                  f"see --max-images): {', '.join(media['thinned'][:8])}{more}")
    for w in info.get("warnings", []):
        _warn(w)
    return 0


# ---- sync ------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec(f"{__package__}.sync") is None:
        raise CliError("sync is not available in this installation of trackhooks (trackhooks.sync is missing)")
    from . import sync  # type: ignore[attr-defined]

    return int(sync.main(args) or 0)


# ---- parser ----------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On subcommands the defaults are suppressed so that `trackhooks --store X runs` and
    # `trackhooks runs --store X` both work.
    d: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--store", metavar="URI", default=d,
                        help="store directory or team store URI such as postgresql://host/db (default: $TRACKHOOKS_URI, "
                             "else ./.trackhooks)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog=PROG, description="Look at and compare the runs trackhooks recorded.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common(p, suppress=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        _common(sp, suppress=True)
        sp.set_defaults(func=func)
        return sp

    sp = add("runs", cmd_runs, "list runs, oldest first, children under their parent")
    sp.add_argument("--experiment", "-e", metavar="E", help="only runs of this experiment")
    sp.add_argument("--status", "-s", choices=STATUSES, help="only runs with this status")
    sp.add_argument("--dataset", "-d", metavar="DIGEST", help="only runs that logged a dataset with this digest (prefix)")
    sp.add_argument("--where", "-w", metavar="EXPR", help="only runs matching EXPR, e.g. \"params.lr < 1e-3 and "
                    "min(metrics.val_loss) < 0.3\" (docs/api.md: the where language)")
    sp.add_argument("--sort", metavar="FIELD", help="sort by FIELD (--sort=-FIELD: descending; several: comma-separated)")
    sp.add_argument("--limit", "-n", type=int, metavar="N", help="at most N runs")
    sp.add_argument("--archived", action="store_true", help="include archived runs")

    sp = add("show", cmd_show, "everything recorded about one run")
    sp.add_argument("run", metavar="RUN", help="run id or unique id prefix")
    sp.add_argument("--console", action="store_true",
                    help="print what the run printed (its console.log, also while it runs)")

    sp = add("compare", cmd_compare, "params that differ and shared metrics of several runs, best marked")
    sp.add_argument("runs", metavar="RUN", nargs="+", help="run ids or unique id prefixes (two or more)")

    sp = add("export", cmd_export, "every metric point and the params/tags of one run, as CSV or JSON")
    sp.add_argument("run", metavar="RUN", help="run id or unique id prefix")
    sp.add_argument("--format", "-f", choices=("csv", "json"), default="csv", help="output format (default csv)")
    sp.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of stdout")

    sp = add("report", cmd_report, "write one self-contained HTML report with interactive charts")
    sp.add_argument("runs", metavar="RUN", nargs="*", help="runs to include (default: all, or --experiment's)")
    sp.add_argument("--experiment", "-e", metavar="E", help="include the runs of this experiment")
    sp.add_argument("--output", "-o", metavar="PATH", default="report.html", help="default report.html")
    sp.add_argument("--title", default=None, help="page title")
    sp.add_argument("--max-images", type=_positive_int, default=None, metavar="N",
                    help="images (and figures) embedded per run and key at most, evenly spaced, the last kept "
                         "(default 50)")
    sp.add_argument("--max-image-mb", type=_non_negative_float, default=32.0, metavar="MB",
                    help="image bytes the report embeds at most (default 32; base64 adds a third)")
    sp.add_argument("--archived", action="store_true", help="include archived runs (named RUNs always are)")

    sp = add("sync", cmd_sync, "replay stored runs into a mirror (mlflow+URI, tensorboard:DIR)")
    sp.add_argument("--to", required=True, metavar="URI", help="mirror URI")
    sp.add_argument("runs", metavar="RUN", nargs="*", help="runs to replay (default: all)")

    def targets(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("runs", metavar="RUN", nargs="*", help="run ids or unique id prefixes")
        sp.add_argument("--where", "-w", metavar="EXPR", help="also the runs matching EXPR (archived ones included)")

    sp = add("rm", cmd_rm, "delete runs and their children (lists them and exits 1 without --yes)")
    targets(sp)
    sp.add_argument("--yes", "-y", action="store_true", help="really delete")

    sp = add("archive", cmd_archive, "hide runs (and their children) from runs, report and UI")
    targets(sp)
    sp = add("unarchive", cmd_unarchive, "show archived runs again")
    targets(sp)

    sp = add("gc", cmd_gc, "remove stored files that no run references any more")
    sp.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    sp = add("tag", cmd_tag, "set tags of a stored run (finished or not)")
    sp.add_argument("run", metavar="RUN", help="run id or unique id prefix")
    sp.add_argument("tags", metavar="KEY=VALUE", nargs="*", help="tags to set")
    sp.add_argument("--delete", metavar="KEY", action="append", help="remove this tag (repeatable)")

    sp = add("rename", cmd_rename, "give a stored run a new name")
    sp.add_argument("run", metavar="RUN", help="run id or unique id prefix")
    sp.add_argument("name", metavar="NAME", help="the new name")

    sp = add("note", cmd_note, "replace a run's note (markdown; '-' reads it from stdin, '' removes it)")
    sp.add_argument("run", metavar="RUN", help="run id or unique id prefix")
    sp.add_argument("text", metavar="TEXT", help="the note")

    sp = add("query", cmd_query, "read-only SQL over the views runs, params, tags, metrics, checkpoints, "
             "artifacts, datasets")
    sp.add_argument("sql", metavar="SQL", help='one SELECT, e.g. "SELECT key, AVG(last) FROM metrics GROUP BY key"')
    sp.add_argument("--limit", "-n", type=int, default=10_000, metavar="N", help="at most N rows (default 10000)")
    sp.add_argument("--timeout", type=float, default=10.0, metavar="S", help="time limit in seconds (default 10)")

    sp = add("ui", cmd_ui, "browse, compare and watch runs in a local web app (read-only)")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sp.add_argument("--token", default=None,
                    help="token every request must carry (default $TRACKHOOKS_UI_TOKEN); required unless --host is "
                         "loopback; give it once as ?token=... (then a cookie keeps it) or as a Bearer header")
    return p


def cmd_ui(args: argparse.Namespace) -> int:
    try:
        from .ui import server
    except ImportError as exc:
        raise CliError(f"the web UI needs its extra: pip install 'trackhooks[ui]' ({exc})") from None
    from .ui.auth import TokenRequiredError, is_loopback

    token = args.token or os.environ.get("TRACKHOOKS_UI_TOKEN") or None
    if not is_loopback(args.host) and not token:
        raise TokenRequiredError(f"refusing to listen on {args.host} without a token: anyone who can reach it could "
                                 "read every run; give --token TOKEN (or $TRACKHOOKS_UI_TOKEN), or use --host 127.0.0.1")
    store = _open(args)  # a clear one-line error for a missing or invalid store
    server.serve(store, host=args.host, port=args.port, token=token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except (CliError, TrackhooksError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        from .errors import QueryError

        if isinstance(exc, QueryError):  # keep the caret under the position: several lines
            sys.stderr.write(f"{PROG}: error: " + "\n".join(sm.clean(line) for line in str(exc).splitlines()) + "\n")
            return 1
        sys.stderr.write(f"{PROG}: error: {sm.clean(_one_line(exc))}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("TRACKHOOKS_DEBUG"):
            raise
        sys.stderr.write(f"{PROG}: internal error: {type(exc).__name__}: {sm.clean(_one_line(exc))} "
                         "(set TRACKHOOKS_DEBUG=1 for the traceback)\n")
        return 3


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, TrackhooksError) and exc.filename:
        text = f"{exc.strerror or text}: {exc.filename}"
    return " ".join(text.split())


def _broken_pipe() -> int:
    # `trackhooks export RUN | head`: the reader left; stop quietly like other Unix tools
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 141
