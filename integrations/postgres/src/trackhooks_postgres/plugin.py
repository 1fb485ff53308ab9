"""Entry point of the PostgreSQL store engine (work in progress)."""
