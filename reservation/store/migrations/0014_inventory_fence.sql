-- The epoch fence (see docs/durability.md, "The fence"): a request or the persister
-- writes what it did in Redis into Postgres only if no rebuild started since. Without it,
-- a commit that lands after a rebuild read Postgres records a booking the rebuilt Redis
-- does not have (its Redis lost it), and Redis sells that place again.
--
-- A rebuild bumps the epoch holding the exclusive lock below (inventory_epoch_bump_lock);
-- every fenced transaction holds it shared (inventory_fence) until it commits. So a fenced
-- commit either ends before the bump, and the rebuild reads it, or sees the new epoch and
-- fails (SQLSTATE FS001: retry; the retry runs against the rebuilt Redis). An advisory
-- lock, not FOR SHARE on the epoch row: no row-lock writes on the hot path.

CREATE FUNCTION inventory_epoch_lock_key(p_prefix text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('fairseat-inventory-epoch:' || p_prefix, 0)
$$;

-- True if the inventory's epoch is still p_expected (held until commit); raises FS001
-- otherwise. '' means unfenced (tools and tests without an epoch guard).
CREATE FUNCTION inventory_fence(p_prefix text, p_expected text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    current_epoch bigint;
BEGIN
    IF p_expected = '' THEN
        RETURN true;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(inventory_epoch_lock_key(p_prefix));
    -- A new statement, a new snapshot: a bump that committed while we waited is seen.
    SELECT epoch INTO current_epoch FROM inventory_epochs WHERE key_prefix = p_prefix;
    IF current_epoch IS NULL OR current_epoch::text <> p_expected THEN
        RAISE EXCEPTION 'the live inventory was rebuilt since this change was made in Redis'
            USING ERRCODE = 'FS001',
                  DETAIL = format('epoch %s then, %s now', p_expected, current_epoch);
    END IF;
    RETURN true;
END
$$;
