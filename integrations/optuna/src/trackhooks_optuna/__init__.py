"""trackhooks for Optuna: a study is one parent run, every trial one child run (see docs/integrations/optuna.md).

``from trackhooks_optuna import TrackhooksCallback, autolog``. Importing those names imports Optuna;
the package itself does not (its entry point ``trackhooks_optuna.plugin`` is loaded by every process
that builds the plugin manager).
"""

from __future__ import annotations

__all__ = ["TrackhooksCallback", "autolog"]


def __getattr__(name: str):
    if name == "TrackhooksCallback":
        from .callback import TrackhooksCallback

        return TrackhooksCallback
    if name == "autolog":
        from .patch import autolog

        return autolog
    raise AttributeError(f"module 'trackhooks_optuna' has no attribute {name!r}")
