-- trackhooks team store, schema version 3: what replication needs to send a round in one statement.
--
-- metric_keys.last_seq: the block whose last point last_step/last_value are. A round moves "last"
-- only to a later block than this one, compared on the row it has locked for the update: two
-- replayers of one run (the live process and `trackhooks sync`) may commit in either order, and the
-- later block wins. Before, the round looked for later blocks in metric_blocks, which misses one
-- that a concurrent transaction commits after the round's snapshot was taken.
ALTER TABLE metric_keys ADD COLUMN last_seq integer;
UPDATE metric_keys k SET last_seq = (SELECT max(b.seq) FROM metric_blocks b WHERE b.key_id = k.id)
    WHERE k.n > 0;

-- Block columns compressed with lz4 where the server has it (PostgreSQL 14+ built with lz4, as
-- Debian's, the official images and the managed services are): steps, epochs and timestamps shrink
-- to a fraction, and compressing is faster than writing every byte to TOAST (a 1M-point run: 30
-- MB -> 12 MB, written in about 0.6x the time). pglz, the default, costs more than it saves on
-- these columns, so without lz4 they stay stored uncompressed (001.sql). Blocks written before
-- keep their form; readers see no difference.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 140000 THEN
        BEGIN
            -- EXECUTE: a server before 14 could not even parse SET COMPRESSION
            EXECUTE 'ALTER TABLE metric_blocks '
                || 'ALTER COLUMN steps SET STORAGE EXTENDED, ALTER COLUMN steps SET COMPRESSION lz4, '
                || 'ALTER COLUMN epochs SET STORAGE EXTENDED, ALTER COLUMN epochs SET COMPRESSION lz4, '
                || 'ALTER COLUMN vals SET STORAGE EXTENDED, ALTER COLUMN vals SET COMPRESSION lz4, '
                || 'ALTER COLUMN times SET STORAGE EXTENDED, ALTER COLUMN times SET COMPRESSION lz4';
        EXCEPTION WHEN feature_not_supported THEN
            NULL;  -- a server built without lz4: the columns stay as they are
        END;
    END IF;
END
$$;
