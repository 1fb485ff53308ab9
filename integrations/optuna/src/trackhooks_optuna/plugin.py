"""Entry point of the Optuna plugin (work in progress)."""
