"""Every hook trackhooks calls. Hooks are called with keyword arguments only.

pluggy serves discovery and configuration, on the caller's thread. The data path never goes through
``pm.hook``: sinks made by ``trackhooks_make_sink`` are called directly by the writer thread, so one
failing plugin cannot skip the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .run import Run
    from .sink import Sink
    from .store import Store

hookspec = pluggy.HookspecMarker("trackhooks")
hookimpl = pluggy.HookimplMarker("trackhooks")


@hookspec
def trackhooks_collect_system_info(run: "Run") -> dict[str, Any] | None:
    """Describe the environment of a run that is starting.

    Called on the writer thread, once per run, right after the run is recorded and before any record
    logged after ``start_run`` returned (so ``flush()``/``finish()`` see its result); ``start_run``
    itself never waits for it. Keep it fast (no network, no subprocess that can hang): the writer
    delivers nothing else meanwhile. Every implementation is called even if another one raises (a
    failure is reported as one warning).

    :return: a flat dict merged into the run's ``system`` record, or None to add nothing.
    """


@hookspec(firstresult=True)
def trackhooks_make_sink(uri: str, options: dict[str, Any]) -> "Sink | None":
    """Build the sink for a mirror URI such as ``mlflow+http://127.0.0.1:5000`` or ``tensorboard:runs``.

    Called on the thread that calls ``start_run``, once per distinct URI per process (sinks are
    cached and shared by every run that names the same URI). The sink it returns is then only ever
    called from the writer thread.

    :return: a :class:`trackhooks.sink.Sink` if this plugin handles the URI's scheme, else None
        (the first non-None result wins).
    """


@hookspec(firstresult=True)
def trackhooks_open_store(uri: str) -> "Store | None":
    """Open the read API over a store URI of this plugin's scheme, e.g. ``postgresql://host/db``.

    Called on the thread that calls ``open_store`` (or any CLI command, ``trackhooks ui``,
    ``report`` or ``sync`` with ``--store``), once per call; plain paths never reach it (they are
    local stores). Connect eagerly and raise :class:`trackhooks.StoreError` naming the server (never a
    password) when the store cannot be reached or is not a trackhooks store. Writing to such a store
    goes through ``trackhooks_make_sink`` with the same URI (a local spool replicated into it).

    :return: a :class:`trackhooks.Store` subclass instance if this plugin handles the URI's scheme,
        else None (the first non-None result wins).
    """


@hookspec
def trackhooks_autolog(options: dict[str, Any]) -> None:
    """Patch the plugin's framework so that training records runs without user code.

    Called on the thread that calls ``trackhooks.autolog(...)``, only on the plugins named there
    (all installed ones when no name is given). ``options`` are the keyword arguments given to
    ``autolog``; ``{"disable": True}`` asks the plugin to restore the framework.

    :return: ignored.
    """
