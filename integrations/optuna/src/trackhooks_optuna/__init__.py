"""trackhooks for Optuna (work in progress)."""
