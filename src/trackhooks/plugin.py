"""The plugin surface: everything a plugin (an integration, a mirror, a store engine) may import.

Plugins import from here and from the public ``trackhooks`` names only, never from internals such as
``trackhooks.writer`` or ``trackhooks.values``: those modules may change shape between releases,
this one changes only with a note in ``docs/plugins.md``.

- ``hookimpl``: the marker for ``trackhooks_*`` hook implementations (pluggy's, see below).
- ``warn_once(key, message)``: one ``RuntimeWarning`` per process for a given key (a failing
  integration or mirror reports once, then keeps quiet).
- ``flatten_params(mapping)`` / ``same_param(a, b)``: the core's param flattening and equality.
- ``START_RUN_OPTIONS``: the keyword arguments of ``start_run`` an integration passes through;
  ``split_options(options, own, where)`` splits an integration's keyword arguments into its own and
  those (an unknown key raises ``InvalidOptionError``, a ``TypeError``).
- the nesting rule (``trackhooks.nesting``, docs/plugins.md "Nesting"): ``open_run`` (-> ``Opened``
  or None), ``decide``, ``suppressed``, ``container``, ``mark_container``, ``mark_owned``.
- ``start_child_run(parent, name, *, params, tags)``: a child run in the parent's experiment, store
  and sinks, without the caller-side store transaction of ``start_run`` (many short children).
- ``collector_paused()``: a context manager holding the cyclic garbage collector off during a
  burst of allocations that stay alive (an autolog patching hundreds of methods; an integration's
  own bookkeeping around a short fit, never the user's code), so that it costs one young
  collection instead of several (``trackhooks/collector.py``).
- ``wake_writer()``: the writer's next cycle now rather than at its interval, for a framework whose
  training releases the GIL for long stretches (XGBoost's rounds): its start-up then runs beside it.
- ``settle_run(run, timeout=5.0)``: the writer's start-up for the run (its environment
  description) now, waiting for it: before a training loop that holds the GIL between short C calls.
- ``prepare_runs(*, data=True, media=True)``: import, with the collector paused, the core modules
  the first run of the process loads (console capture, system sampler, data versions, rich
  records), for an integration's set-up call (``autolog()``, ``track()``) instead of its first fit.
- ``log_step_metrics(run, metrics, step, epoch)``: ``run.log_metrics`` for the per-step values of a
  framework that has checked them already (Lightning's ``self.log``: one-element real tensors): the
  dict is taken over, not copied, and only new keys are checked.
- the mirror replay base: ``ReplaySink``, ``ReplayTarget``, ``RunView``, ``Cursor``,
  ``CursorConflict``, ``replay_run``, ``TERMINAL``.
- the store engine base: ``Store`` (subclass it, see ``trackhooks/store/api.py``), the packed
  metric column helpers ``pack``/``unpack`` and ``NO_EPOCH``, ``redact_uri`` (a URI without its
  password), ``spool_path()``; the housekeeping base ``Housekeeping`` (delete/archive/tags/rename/
  note over an engine's ``_write()``, see ``trackhooks/store/housekeeping.py``) and ``GcResult``; the
  read-only query surface ``QueryResult``, ``view_ddl(dialect, ...)`` and ``VIEWS``.

Importing this module imports nothing else (every name but ``hookimpl`` loads on first use), so that
an entry-point module that does ``from trackhooks.plugin import hookimpl`` costs almost nothing:
``trackhooks.autolog()`` imports every integration's entry-point module in every script that calls it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    _F = TypeVar("_F", bound=Callable[..., Any])

PROJECT_NAME = "trackhooks"


def hookimpl(function: "_F | None" = None, *, hookwrapper: bool = False, optionalhook: bool = False,
             tryfirst: bool = False, trylast: bool = False, specname: "str | None" = None,
             wrapper: bool = False) -> Any:
    """Mark a ``trackhooks_*`` hook implementation: ``pluggy.HookimplMarker("trackhooks")`` without
    importing pluggy (it sets the same ``trackhooks_impl`` options; a test compares the two)."""

    def mark(func: "_F") -> "_F":
        setattr(func, PROJECT_NAME + "_impl", {
            "wrapper": wrapper, "hookwrapper": hookwrapper, "optionalhook": optionalhook,
            "tryfirst": tryfirst, "trylast": trylast, "specname": specname,
        })
        return func

    return mark if function is None else mark(function)


_NESTING = ("open_run", "Opened", "decide", "suppressed", "container", "mark_container", "mark_owned",
            "split_options", "InvalidOptionError")


def __getattr__(name: str) -> Any:
    if name == "warn_once":
        from .writer import warn_once as value
    elif name in ("flatten_params", "same_param"):
        from . import values

        value = getattr(values, name)
    elif name in ("ReplaySink", "ReplayTarget", "RunView", "Cursor", "CursorConflict", "replay_run", "TERMINAL"):
        # the replay base pulls in the store read side: load it only for the mirrors that need it
        from . import sync

        return getattr(sync, name)
    elif name in ("Store", "redact_uri", "spool_path", "NO_EPOCH"):
        from . import store

        return getattr(store, name)
    elif name in ("Housekeeping", "GcResult"):
        from .store import housekeeping

        return getattr(housekeeping, name)
    elif name in ("QueryResult", "view_ddl", "VIEWS"):
        from .store import readonly

        return getattr(readonly, name)
    elif name in ("pack", "unpack"):
        from .store import records

        return getattr(records, name)
    elif name == "START_RUN_OPTIONS":
        from .nesting import start_run_options

        return start_run_options()
    elif name in _NESTING:  # loads the run module: only when an integration records something
        from . import nesting

        return getattr(nesting, name)
    elif name == "start_child_run":
        from .run import start_child_run

        return start_child_run
    elif name == "collector_paused":
        from .collector import paused as value
    elif name == "wake_writer":
        from .writer import wake_writer as value
    elif name == "log_step_metrics":  # the method itself, unbound: no wrapper call on the per-step path
        from .run import Run

        value = Run._log_checked
    elif name == "settle_run":
        from .run import settle_run as value
    elif name == "prepare_runs":
        from .run import prepare_runs as value
    else:
        raise AttributeError(f"module 'trackhooks.plugin' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["hookimpl", "warn_once", "flatten_params", "same_param", "START_RUN_OPTIONS", *_NESTING, "start_child_run",
           "collector_paused", "wake_writer", "settle_run", "prepare_runs", "log_step_metrics", "ReplaySink", "ReplayTarget", "RunView", "Cursor", "CursorConflict", "replay_run", "TERMINAL", "Store", "pack",
           "unpack", "NO_EPOCH", "redact_uri", "spool_path", "Housekeeping", "GcResult", "QueryResult", "view_ddl", "VIEWS"]
