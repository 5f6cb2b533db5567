-- Waitlist (候补, issue 5 item 3) and handoff defence (item 4).
--
-- Postgres is the record of every waitlist order and of its place in line (`seq`, the
-- filing order); Redis keeps only what its scripts must check atomically (how many orders
-- wait on an inventory unit, and the freed places in cooling). See docs/waitlist.md.
CREATE TABLE waitlist_orders (
    id               text PRIMARY KEY,
    seq              bigserial UNIQUE,              -- the line: lower is served first
    account_id       text NOT NULL REFERENCES accounts (id),
    kind             text NOT NULL CHECK (kind IN ('train', 'slot')),
    state            text NOT NULL DEFAULT 'waiting'
                         CHECK (state IN ('waiting', 'fulfilled', 'cancelled', 'ended')),
    filed_at         timestamptz NOT NULL,
    deadline         timestamptz NOT NULL,
    people           text[] NOT NULL,               -- ID HMACs, in passenger order
    passenger_ids    text[] NOT NULL,               -- the account's passenger ids (trains)
    request          jsonb NOT NULL,                -- the order as filed, for display
    idempotency_key  text NOT NULL,
    -- The hold the filler is about to make (written before the Lua call, so a crash in
    -- between is settled by looking the hold up), then the hold that fulfilled the order.
    offer_hold_id    text,
    offer_rank       integer,
    hold_id          text,
    fulfilled_rank   integer,
    ended_at         timestamptz,
    end_reason       text,
    UNIQUE (account_id, idempotency_key),
    CHECK (deadline > filed_at)
);
CREATE INDEX waitlist_orders_account ON waitlist_orders (account_id, seq DESC);
CREATE INDEX waitlist_orders_waiting ON waitlist_orders (deadline) WHERE state = 'waiting';

-- One row per acceptable (run, class) or (resource, day), in the citizen's order of
-- preference (`rank`). `unit` names the inventory unit as the Redis keys do.
CREATE TABLE waitlist_choices (
    order_id     text NOT NULL REFERENCES waitlist_orders (id) ON DELETE CASCADE,
    rank         integer NOT NULL CHECK (rank >= 0),
    unit         text NOT NULL,                     -- 'run:<run>:<class>' | 'res:<resource>:<day>'
    shard        integer NOT NULL,
    run_id       text,
    seat_class   text,
    seg_from     smallint,
    seg_to       smallint,
    resource_id  text,
    day          date,
    PRIMARY KEY (order_id, rank)
);
CREATE INDEX waitlist_choices_unit ON waitlist_choices (unit);

-- Cancel -> rebook pairs between different ID numbers within a short window: the same
-- slot, or the same seat on overlapping segments, cancelled by one person and held by
-- another soon after. Stored for operators (and audited); never acted on automatically.
CREATE TABLE handoff_flags (
    id                 bigserial PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('slot', 'seat')),
    object             text NOT NULL,               -- slot id, or run/class/coach/seat
    cancelled_id       text NOT NULL,               -- booking or ticket id
    cancelled_account  text NOT NULL,
    cancelled_person   text NOT NULL,
    cancelled_at       timestamptz NOT NULL,
    booked_id          text NOT NULL,
    booked_account     text NOT NULL,
    booked_person      text NOT NULL,
    booked_at          timestamptz NOT NULL,
    gap_ms             bigint NOT NULL,
    flagged_at         timestamptz NOT NULL,
    UNIQUE (cancelled_id, booked_id)
);
CREATE INDEX handoff_flags_recent ON handoff_flags (flagged_at DESC);

-- What the filler's flag queries read every few seconds: recent give-ups, and who held
-- the same slot or seat after them (without these, a scan of every booking and ticket).
CREATE INDEX bookings_cancelled_recent ON bookings (ended_at) WHERE state = 'cancelled';
CREATE INDEX bookings_slot_held_at ON bookings (slot_id, held_at);
CREATE INDEX tickets_given_up_recent ON tickets (ended_at)
    WHERE state IN ('cancelled', 'refunded', 'changed');
CREATE INDEX tickets_seat_held_at ON tickets (run_id, seat_class, coach, seat, held_at);
