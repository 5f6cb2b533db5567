-- The live inventory's epoch (issue 4): which rebuild from Postgres the Redis markers must
-- carry, and whether sales are open. One row per key prefix (one live inventory each).
-- A rebuild bumps `epoch` and writes it into every shard's marker; a detected Redis
-- restart or loss sets `open` to false until the next rebuild.
CREATE TABLE inventory_epochs (
    key_prefix     text PRIMARY KEY,
    epoch          bigint NOT NULL CHECK (epoch > 0),
    open           boolean NOT NULL,
    reason         text NOT NULL DEFAULT '',
    -- run_id of every Redis node the last rebuild wrote to: another one means a node
    -- restarted (or failed over) since, and may have come back without its last writes.
    redis_run_ids  text[] NOT NULL DEFAULT '{}',
    rebuilt_at     timestamptz,
    changed_at     timestamptz NOT NULL DEFAULT now()
);
