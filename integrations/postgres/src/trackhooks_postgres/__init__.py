"""trackhooks team store on PostgreSQL: ``postgresql://...`` wherever a store is accepted.

See docs/team.md. ``engine.PostgresStore`` reads, ``replica.PostgresReplica`` writes (replicating
local spool stores), ``schema/`` holds the versioned SQL.
"""
