-- Train tickets (issue 3): the account's passenger list, tickets written from the seat
-- inventory's outbox events, and payments.
-- No foreign keys to the timetable (0002): run ids are kept as text.

-- The people an account may book for (the account holder first, at most 15 in all; the
-- limit is enforced by reservation.domain.passengers under a lock on the account row).
-- Like accounts, the ID number is kept only as a keyed HMAC and a masked form.
CREATE TABLE passengers (
    id           text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    id_hmac      text NOT NULL,
    id_masked    text NOT NULL,
    birth_date   date NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('adult', 'child', 'student')),
    is_holder    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id_hmac)
);
CREATE INDEX passengers_account ON passengers (account_id, created_at);
-- At most one "the account holder themself" entry per account.
CREATE UNIQUE INDEX passengers_one_holder ON passengers (account_id) WHERE is_holder;

-- One row per passenger of a seat hold ('<hold id>.<n>', n = 1.. in passenger order).
-- Written from the seat events of the outbox by the persister; the state only moves
-- forward, whatever order writers arrive in:
--   held(1) -> confirmed(2) -> cancelled / expired / changed(3) -> refunded(4)
-- refunded is written by the refund path once the money went back, after the seat's
-- cancellation; a late `cancelled` event can therefore never undo it.
-- No foreign key to accounts: the inventory is the authority on what was sold, and a
-- refused row would dead-letter the record of a sold seat.
CREATE TABLE tickets (
    id                 text PRIMARY KEY,
    hold_id            text NOT NULL,
    passenger_no       smallint NOT NULL CHECK (passenger_no BETWEEN 1 AND 5),
    run_id             text NOT NULL,
    seat_class         text NOT NULL,
    coach              text NOT NULL,
    seat               text NOT NULL,            -- e.g. '07F'
    position           text NOT NULL,            -- window, aisle, middle, upper, lower
    seg_from           smallint NOT NULL,        -- boarding stop index
    seg_to             smallint NOT NULL,        -- alighting stop index
    person_hmac        text NOT NULL,            -- the passenger's ID HMAC
    account_id         text NOT NULL,
    state              text NOT NULL CHECK (state IN (
                           'held', 'confirmed', 'cancelled', 'expired', 'changed', 'refunded')),
    state_rank         smallint NOT NULL,
    price_fen          integer CHECK (price_fen >= 0),
    refund_fee_fen     integer CHECK (refund_fee_fen >= 0),
    verification_code  text,
    change_of          text,                     -- the old hold of a 改签
    changed_to         text,                     -- the new hold of a 改签
    held_at            timestamptz,              -- NULL only if the held event was lost
    deadline           timestamptz,
    confirmed_at       timestamptz,
    ended_at           timestamptz,
    end_reason         text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (seg_from < seg_to),
    UNIQUE (hold_id, passenger_no)
);
CREATE INDEX tickets_account ON tickets (account_id, held_at DESC);
CREATE INDEX tickets_person_live ON tickets (person_hmac, run_id)
    WHERE state IN ('held', 'confirmed');
-- "Three cancellations a day": the account's unpaid cancellations by time.
CREATE INDEX tickets_account_cancelled ON tickets (account_id, ended_at)
    WHERE state = 'cancelled';

-- Charges and refunds through a payment provider; the idempotency key makes a retried
-- request one payment.
CREATE TABLE payments (
    id               text PRIMARY KEY,           -- the provider's payment id
    order_id         text NOT NULL,              -- the seat hold id
    kind             text NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_fen       integer NOT NULL CHECK (amount_fen >= 0),
    provider         text NOT NULL,
    status           text NOT NULL CHECK (status IN ('succeeded', 'declined')),
    idempotency_key  text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON payments (order_id);
