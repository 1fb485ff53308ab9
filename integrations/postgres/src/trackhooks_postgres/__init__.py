"""trackhooks team store on PostgreSQL (work in progress)."""
