"""trackhooks for Optuna: a study is one parent run, every trial one child run (see docs/integrations/optuna.md).

``from trackhooks_optuna import TrackhooksCallback, autolog``. Importing this package imports Optuna.
"""

from __future__ import annotations

from .callback import TrackhooksCallback
from .patch import autolog

__all__ = ["TrackhooksCallback", "autolog"]
