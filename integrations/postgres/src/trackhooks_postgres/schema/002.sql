-- trackhooks team store, schema version 2: tombstones of deleted runs.
--
-- store.delete_runs() / `trackhooks rm` record every run it deletes here, in the same transaction;
-- replication (replica.py) skips a run found here, so a spool that still holds a deleted run (or
-- a later `trackhooks sync --to`) never brings it back. To restore such a run from a spool on
-- purpose: DELETE FROM deleted_runs WHERE id = '...'; then `trackhooks sync --to <URI> --store <spool>`.

CREATE TABLE deleted_runs (
    id text COLLATE "C" PRIMARY KEY,
    time double precision NOT NULL
);
