"""Holding Python's cyclic garbage collector off during a burst of allocations that stay alive.

A young-generation collection runs every ~700 container allocations and walks everything allocated
since the last one; every tenth promotes its survivors a generation up, and every tenth of those
may start a full collection of the whole heap (~75 ms for the ~140 000 objects of a scikit-learn
process, more for torch + Lightning). A burst of long-lived allocations — the writer's start-up
(imports, plugin modules, per-key state), a 10 000-run frame — pays for young collections that
free nothing and pushes the process toward a full one. With the collector held off, the burst ends
with one young collection instead of many (measured in the scikit-learn search workload: 12
collections during the fit, one of them a 75-80 ms full collection, against 6 and none).

``paused()`` nests, also across threads: the collector is disabled by the first entrant if it was
enabled, and enabled again when the last one leaves. If it was already off, nothing is changed.
Keep the windows short (one-time work, or an integration's milliseconds of bookkeeping around a fit,
never the user's code): a program that calls ``gc.disable()`` itself from
another thread while a window is open has its choice undone when the window closes.
"""

from __future__ import annotations

import _thread
import gc

_lock = _thread.allocate_lock()
_depth = 0
_reenable = False


class paused:
    """Context manager: no automatic collection while inside (``gc.collect()`` still works)."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _depth, _reenable
        with _lock:
            if _depth == 0:
                _reenable = gc.isenabled()
                if _reenable:
                    gc.disable()
            _depth += 1

    def __exit__(self, *exc: object) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and _reenable:
                gc.enable()
