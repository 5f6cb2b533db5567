-- Waiting rooms of queued sales (issue 5): the record of each sale's draw.
--
-- The live queue is in Redis (one shard per sale); Postgres keeps what must outlive it and
-- what the public checks: the sale's definition and commitment, the window's joiners list
-- (published with the revealed seed), and when the sold-out notice went out. The seed is
-- never stored: it is HMAC(secret key, sale id | seed_salt), so reading the database
-- before the reveal does not tell anyone the draw.
CREATE TABLE sales (
    id               text PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('slots', 'train')),
    provider_id      text REFERENCES providers (id),
    train_date       date,
    release_at       timestamptz NOT NULL,
    window_ends_at   timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    admit_factor     integer NOT NULL CHECK (admit_factor >= 1),
    admission_ttl_ms integer NOT NULL CHECK (admission_ttl_ms > 0),
    stock            integer NOT NULL CHECK (stock >= 0),
    seed_salt        bytea NOT NULL,
    commitment       text NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    drawn_at         timestamptz,
    window_count     integer,
    seed             text,          -- revealed after the draw, never before
    sold_out_notified_at timestamptz,
    CHECK (window_ends_at >= release_at AND ends_at > window_ends_at),
    CHECK ((kind = 'slots') = (provider_id IS NOT NULL)),
    CHECK ((kind = 'train') = (train_date IS NOT NULL))
);
CREATE INDEX sales_active ON sales (ends_at);

-- The slots a slot sale covers (a train sale covers the runs boarding on its date).
CREATE TABLE sale_slots (
    sale_id  text NOT NULL REFERENCES sales (id),
    slot_id  text NOT NULL REFERENCES slots (id),
    PRIMARY KEY (sale_id, slot_id)
);
CREATE INDEX sale_slots_slot ON sale_slots (slot_id);

-- The window's joiners, as published: pseudonymous join ids, never account ids.
CREATE TABLE sale_joiners (
    sale_id    text NOT NULL REFERENCES sales (id),
    join_id    text NOT NULL,
    arrival    integer NOT NULL,
    joined_ms  bigint NOT NULL,
    position   integer NOT NULL,
    PRIMARY KEY (sale_id, join_id)
);
