"""The nesting rule: which run a framework integration records a fit into, defined once for all of them.

An integration that is about to record a fit calls :func:`open_run` on the thread the fit runs on.
The rule looks at *this thread's* run stack (runs started on this thread and the frames integrations
push there), innermost first, and decides:

1. ``run=`` given by the user: record into it (never finished by the integration).
2. A ``suppress`` frame or another integration's fit in progress (a scikit-learn search or
   ``cross_val_score`` whose inner fits are XGBoost, Keras or Lightning estimators): record
   nothing, :func:`open_run` returns None. Only the outermost fit records.
3. A container (an Optuna trial's run, or a search's refit window): record into that run and do not
   finish it; the ``params``/``tags`` options are added to it, the other ``start_run`` options
   (experiment, name, store, ...) are ignored because the container already has them.
4. A run the user started (``with trackhooks.start_run():``), on this thread or, if this thread has
   none, anywhere in the process: ``user_run="child"`` opens a child of it, ``"into"`` records into
   it (only without ``start_run`` options).
5. Nothing: open a run of its own with the ``start_run`` options; finished by ``Opened.close``.

An explicit ``parent=`` option skips 3 and 4 (the user asked for a new child run) but not 2.
A fit frame of the *same* integration is skipped: an integration's own nested fits never reach
``open_run`` (each guards them itself), so such a frame is one whose end was never seen (a Keras
``fit`` that raised under the explicit callback, which Keras does not tell its callbacks).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any

from . import run as _run
from .errors import TrackhooksError, short_repr
from .values import flatten_params, same_param
from .writer import warn_once

USER_RUN_POLICIES = ("child", "into")


class InvalidOptionError(TrackhooksError, TypeError):
    """An integration got a keyword argument it does not take (names it and what it takes)."""


def start_run_options() -> tuple[str, ...]:
    """The keyword arguments of ``start_run`` an integration passes through (all but ``resume``)."""
    global _start_run_options
    if _start_run_options is None:  # inspect.signature is ~50 us: once per process, not per recorded fit
        import inspect

        _start_run_options = tuple(p for p in inspect.signature(_run.start_run).parameters if p != "resume")
    return _start_run_options


_start_run_options: tuple[str, ...] | None = None


def split_options(options: Mapping[str, Any], own: tuple[str, ...] | frozenset[str], where: str,
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the integration's own options, the ``start_run`` options) of ``options``.

    An unknown key raises :class:`InvalidOptionError` (a ``TypeError``) naming it and what ``where``
    takes.
    """
    run_opts = start_run_options()
    unknown = sorted(k for k in options if k not in own and k not in run_opts)
    if unknown:
        takes = ", ".join([*sorted(own), *run_opts])
        raise InvalidOptionError(f"{where} got unexpected keyword argument(s) {', '.join(map(repr, unknown))} "
                                 f"(value {short_repr(options[unknown[0]])}); it takes {takes}")
    mine = {k: v for k, v in options.items() if k in own}
    return mine, {k: v for k, v in options.items() if k not in own}


class Opened:
    """The run one fit records into, from :func:`open_run`.

    ``run``: log into it. ``owned``: this fit opened it (``close`` finishes it). ``nested``: it is a
    container's or the user's run that other fits may also write to (params with other values are
    then kept as they were, see :meth:`log_params`). ``close(status)`` ends the fit: pops its frame
    from the thread's stack and finishes an owned run; it is idempotent and never raises.
    """

    __slots__ = ("run", "owned", "nested", "integration", "_stacked", "_closed")

    def __init__(self, run: "_run.Run", owned: bool, nested: bool, integration: str):
        self.run, self.owned, self.nested, self.integration = run, owned, nested, integration
        self._closed = False
        stack = _run.thread_stack()
        entry = _run.StackEntry("fit", run, integration)
        stack.append(entry)
        self._stacked = (stack, entry)

    def __repr__(self) -> str:
        return f"Opened({self.run!r}, owned={self.owned}, nested={self.nested}, integration={self.integration!r})"

    def log_params(self, params: Mapping[str, Any]) -> list[str]:
        """log_params that keeps the first value of keys the run already holds with another value
        (a trial's run may see several fits); returns the keys it kept back."""
        flat = flatten_params(params)
        have = self.run.params
        clash = sorted(k for k, v in flat.items() if k in have and not same_param(have[k], v))
        new = {k: v for k, v in flat.items() if k not in have}
        if new:
            self.run.log_params(new)
        return clash

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """set_tags, except that in another integration's run of an outer fit (a search's refit
        recording into the search's run) the ``framework`` tag stays the outer one."""
        if self.nested and self.run._role == "fit" and self.run._opened_by not in (None, self.integration):
            tags = {k: v for k, v in tags.items() if k != "framework"}
        if tags:
            self.run.set_tags(tags)

    def detach(self) -> None:
        """The fit is over but the run goes on (``partial_fit``: one run over many calls): pop the
        fit frame now, finish the run later with ``close``."""
        _run._unstack(*self._stacked)

    def close(self, status: str = "finished") -> None:
        if self._closed:
            return
        self._closed = True
        _run._unstack(*self._stacked)
        if self.owned and self.run.status == "running":
            try:
                self.run.finish(status)
            except Exception as exc:  # tracking never fails the fit
                warn_once(("nesting", self.integration, "finish"), f"{self.integration}: finishing run "
                          f"{self.run.id[:8]} failed ({type(exc).__name__}: {exc})")

    def __enter__(self) -> "Opened":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close("finished" if exc_type is None else "killed" if issubclass(exc_type, KeyboardInterrupt)
                   else "failed")


def decide(integration: str) -> tuple[str, "_run.Run | None"]:
    """What a fit of ``integration`` starting now on this thread records into, ignoring options:
    ("none", None) record nothing, ("into", run) a container, ("user", run) the user's run,
    ("new", None) a run of its own."""
    stack = _run.thread_stack()
    for entry in reversed(stack[:]):
        kind, run = entry.kind, entry.run
        if kind == "suppress":
            return "none", None
        if run is None or run.status != "running":
            continue
        if kind == "fit":
            if entry.integration == integration:
                continue
            return "none", None
        if kind == "container" or run._role == "container":
            return "into", run
        if run._role is None:  # a run the user started on this thread
            return "user", run
    pid = os.getpid()  # no run of the user's on this thread: one started on another thread
    with _run._active_lock:
        for run in reversed(_run._active):
            if run._role is None and run.status == "running" and run._state.owner_pid == pid:
                return "user", run
    return "new", None


def open_run(integration: str, *, run: "_run.Run | None" = None, options: Mapping[str, Any] | None = None,
             resume: str | None = None, user_run: str = "child") -> Opened | None:
    """Apply the nesting rule (module docstring) for one fit of ``integration`` on this thread.

    ``run``: the run the user gave the integration. ``options``: the ``start_run`` keyword arguments
    it was given (checked). ``resume``: a run id to continue instead of opening a new run (a
    Lightning checkpoint that names its run). Returns the :class:`Opened` run to record into, or
    None when the fit must record nothing. Errors of ``start_run`` (e.g. a store that cannot be
    opened) propagate: the integration turns them into its one warning.
    """
    if user_run not in USER_RUN_POLICIES:
        raise InvalidOptionError(f"user_run must be one of {', '.join(USER_RUN_POLICIES)}, got {user_run!r}")
    opts = dict(options or {})
    _, opts = split_options(opts, (), f"{integration} integration")
    if run is not None:
        kind = decide(integration)[0]
        if kind == "none":
            return None
        return Opened(run, owned=False, nested=True, integration=integration)
    kind, target = decide(integration)
    if kind == "none":
        return None
    explicit_parent = opts.get("parent") is not None
    if kind == "into" and not explicit_parent:
        opened = Opened(target, owned=False, nested=True, integration=integration)  # type: ignore[arg-type]
        _add_options(opened, opts)
        return opened
    if kind == "user" and not explicit_parent:
        if user_run == "into" and not opts:
            return Opened(target, owned=False, nested=True, integration=integration)  # type: ignore[arg-type]
        opts["parent"] = target
        if "mirrors" not in opts:  # a child goes to exactly the sinks of its parent
            opts["mirrors"] = list(target._state.channel.sinks[1:])  # type: ignore[union-attr]
        if "store" not in opts:
            opts["store"] = target.store  # type: ignore[union-attr]
    new = _run.start_run(resume=resume, **opts) if resume is not None else _run.start_run(**opts)
    new._role, new._opened_by = "fit", integration
    return Opened(new, owned=True, nested=False, integration=integration)


def _add_options(opened: Opened, opts: Mapping[str, Any]) -> None:
    try:
        if opts.get("params"):
            clash = opened.log_params(opts["params"])
            if clash:
                warn_once(("nesting", opened.integration, "params"), f"{opened.integration}: run "
                          f"{opened.run.id[:8]} already has other values for {', '.join(clash[:5])}; kept them")
        if opts.get("tags"):
            opened.run.set_tags(opts["tags"])
    except TrackhooksError as exc:
        warn_once(("nesting", opened.integration, "options"), f"{opened.integration}: params/tags options "
                  f"not recorded into run {opened.run.id[:8]} ({type(exc).__name__}: {exc})")


def active(integration: str) -> bool:
    """Would a fit of ``integration`` starting now on this thread record anything? (One stack scan.)"""
    return decide(integration)[0] != "none"


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Fits started on this thread inside the block record nothing (they are inner fits)."""
    stack = _run.thread_stack()
    entry = _run.StackEntry("suppress", None)
    stack.append(entry)
    try:
        yield
    finally:
        _run._unstack(stack, entry)


@contextlib.contextmanager
def container(run: "_run.Run") -> Iterator["_run.Run"]:
    """Fits started on this thread inside the block record into ``run`` and leave it open (an
    Optuna trial, a search's refit). Frames pushed inside the block take precedence over it."""
    if not isinstance(run, _run.Run):
        raise _run.InvalidValueError(f"container() takes a Run, got {short_repr(run)}")
    stack = _run.thread_stack()
    entry = _run.StackEntry("container", run)
    stack.append(entry)
    try:
        yield run
    finally:
        _run._unstack(stack, entry)


def mark_container(run: "_run.Run", integration: str) -> None:
    """Mark a run an integration opened as a container for as long as it runs (an Optuna trial's
    run): fits on the thread that started it record into it."""
    run._role, run._opened_by = "container", integration


def mark_owned(run: "_run.Run", integration: str) -> None:
    """Mark a run an integration opened itself (not the user's): it is never adopted as the user's
    run by a later fit (e.g. an Optuna study's parent run)."""
    run._role, run._opened_by = "fit", integration


__all__ = ["open_run", "Opened", "decide", "suppressed", "container", "mark_container", "mark_owned",
           "split_options", "start_run_options", "InvalidOptionError", "USER_RUN_POLICIES"]
