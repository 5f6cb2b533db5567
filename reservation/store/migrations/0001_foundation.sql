-- Foundation: accounts, credentials, providers, resources, slots, bookings, events.
-- ID numbers are never stored raw: only a keyed HMAC (unique) and a masked form.

CREATE TABLE providers (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('hospital', 'vaccination', 'railway')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    phone        text NOT NULL,
    id_hmac      text NOT NULL UNIQUE,
    id_masked    text NOT NULL,
    birth_date   date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_phone ON accounts (phone);

-- Staff and operator API keys; only a SHA-256 of the key is kept.
CREATE TABLE api_keys (
    key_hash     text PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('staff', 'operator')),
    provider_id  text REFERENCES providers (id),
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'staff') = (provider_id IS NOT NULL))
);

-- A bookable resource of a provider: a doctor's clinic, a vaccination session line...
CREATE TABLE resources (
    id           text PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES providers (id),
    code         text NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    UNIQUE (provider_id, code)
);

CREATE TABLE slots (
    id           text PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES providers (id),
    resource_id  text NOT NULL REFERENCES resources (id),
    day          date NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    capacity     integer NOT NULL CHECK (capacity > 0),
    release_at   timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK (release_at <= starts_at),
    UNIQUE (resource_id, starts_at)
);
CREATE INDEX slots_provider_day ON slots (provider_id, day);
CREATE INDEX slots_resource_day ON slots (resource_id, day);

-- One row per hold; its state only moves forward (state_rank), whatever order the
-- confirm path and the persister write in: held(1) -> confirmed(2) -> cancelled/expired(3).
CREATE TABLE bookings (
    id               text PRIMARY KEY,
    slot_id          text NOT NULL REFERENCES slots (id),
    account_id       text NOT NULL REFERENCES accounts (id),
    person_hmac      text NOT NULL,
    state            text NOT NULL CHECK (state IN ('held', 'confirmed', 'cancelled', 'expired')),
    state_rank       smallint NOT NULL,
    idempotency_key  text NOT NULL DEFAULT '',
    held_at          timestamptz NOT NULL,
    deadline         timestamptz NOT NULL,
    confirmed_at     timestamptz,
    ended_at         timestamptz,
    end_reason       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_account ON bookings (account_id, held_at DESC);
CREATE INDEX bookings_slot ON bookings (slot_id) WHERE state IN ('held', 'confirmed');

-- Every inventory event from the outbox streams, exactly once (replays are no-ops).
CREATE TABLE inventory_events (
    event_id     text PRIMARY KEY,          -- '<shard>:<stream entry id>'
    hold_id      text NOT NULL,
    type         text NOT NULL,
    at           timestamptz NOT NULL,
    payload      jsonb NOT NULL,
    persisted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_events_hold ON inventory_events (hold_id);
