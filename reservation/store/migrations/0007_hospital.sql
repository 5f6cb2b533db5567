-- Hospital registration (挂号, issue 6): hospitals -> departments -> doctors -> sessions
-- -> time slots. A hospital is a provider; the bookable unit stays the generic slot
-- (slots/bookings of 0001). A doctor has two resources, one per channel pool: "online"
-- (the app) and "counter" (phone and on-site, kept for elderly citizens), so each pool is
-- its own stock in the live inventory and the app can never eat the counter's share.

-- Per-hospital release policy and channel quota. Absent row = the defaults below.
CREATE TABLE hospital_policies (
    provider_id                  text PRIMARY KEY REFERENCES providers (id),
    release_time                 time NOT NULL DEFAULT '07:00',
    days_ahead                   integer NOT NULL DEFAULT 7 CHECK (days_ahead BETWEEN 1 AND 60),
    cancel_deadline_days_before  integer NOT NULL DEFAULT 1
                                 CHECK (cancel_deadline_days_before BETWEEN 0 AND 14),
    cancel_deadline_time         time NOT NULL DEFAULT '15:00',
    counter_share_percent        integer NOT NULL DEFAULT 20
                                 CHECK (counter_share_percent BETWEEN 0 AND 100),
    offer_hold_minutes           integer NOT NULL DEFAULT 120
                                 CHECK (offer_hold_minutes BETWEEN 5 AND 1440),
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hospital_departments (
    id           text PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES providers (id),
    code         text NOT NULL,
    name         text NOT NULL,
    UNIQUE (provider_id, code)
);

CREATE TABLE hospital_doctors (
    id             text PRIMARY KEY,
    provider_id    text NOT NULL REFERENCES providers (id),
    department_id  text NOT NULL REFERENCES hospital_departments (id),
    code           text NOT NULL,
    name           text NOT NULL,
    title          text NOT NULL,
    specialty      text NOT NULL DEFAULT '',
    fee_fen        integer NOT NULL CHECK (fee_fen >= 0),
    online_resource_id   text NOT NULL REFERENCES resources (id),
    counter_resource_id  text NOT NULL REFERENCES resources (id),
    UNIQUE (provider_id, code)
);
CREATE INDEX hospital_doctors_department ON hospital_doctors (department_id);

-- A doctor's half-day: the unit staff publish and cancel.
CREATE TABLE hospital_sessions (
    id                text PRIMARY KEY,
    provider_id       text NOT NULL REFERENCES providers (id),
    doctor_id         text NOT NULL REFERENCES hospital_doctors (id),
    department_id     text NOT NULL REFERENCES hospital_departments (id),
    day               date NOT NULL,
    period            text NOT NULL CHECK (period IN ('morning', 'afternoon')),
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    slot_minutes      integer NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240),
    capacity          integer NOT NULL CHECK (capacity > 0),
    counter_capacity  integer NOT NULL CHECK (counter_capacity >= 0 AND counter_capacity <= capacity),
    release_at        timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    cancelled_at      timestamptz,
    cancel_reason     text,
    CHECK (ends_at > starts_at),
    UNIQUE (doctor_id, day, period)
);
CREATE INDEX hospital_sessions_department_day ON hospital_sessions (department_id, day);
CREATE INDEX hospital_sessions_provider_day ON hospital_sessions (provider_id, day);

-- Which session and channel pool each generic slot belongs to.
CREATE TABLE hospital_slots (
    slot_id     text PRIMARY KEY REFERENCES slots (id),
    session_id  text NOT NULL REFERENCES hospital_sessions (id),
    channel     text NOT NULL CHECK (channel IN ('online', 'counter')),
    starts_at   timestamptz NOT NULL
);
CREATE INDEX hospital_slots_session ON hospital_slots (session_id, starts_at);

-- One row per registration (id = the generic hold id). The inventory (Redis) decides
-- holds; this row carries what the hospital needs: department, channel, origin, the
-- verification code, check-in and no-show. An unpaid hold that expired stays 'held' here;
-- readers take the live state from the generic bookings row.
CREATE TABLE hospital_registrations (
    id                 text PRIMARY KEY,
    provider_id        text NOT NULL REFERENCES providers (id),
    account_id         text NOT NULL REFERENCES accounts (id),
    person_hmac        text NOT NULL,
    slot_id            text NOT NULL REFERENCES slots (id),
    session_id         text NOT NULL REFERENCES hospital_sessions (id),
    department_id      text NOT NULL REFERENCES hospital_departments (id),
    doctor_id          text NOT NULL REFERENCES hospital_doctors (id),
    day                date NOT NULL,
    starts_at          timestamptz NOT NULL,
    channel            text NOT NULL CHECK (channel IN ('online', 'phone', 'onsite')),
    origin             text NOT NULL CHECK (origin IN ('citizen', 'walk_in', 'offer', 'standby')),
    status             text NOT NULL
                       CHECK (status IN ('held', 'confirmed', 'cancelled', 'checked_in', 'no_show')),
    offered_for        text,             -- the cancelled registration this one replaces
    verification_code  text NOT NULL,
    hold_deadline      timestamptz NOT NULL,
    created_at         timestamptz NOT NULL,
    confirmed_at       timestamptz,
    ended_at           timestamptz,
    end_reason         text,
    checked_in_at      timestamptz
);
CREATE INDEX hospital_registrations_account ON hospital_registrations (account_id, day);
CREATE INDEX hospital_registrations_provider_day ON hospital_registrations (provider_id, day);
CREATE INDEX hospital_registrations_session ON hospital_registrations (session_id);

-- No-shows count per person (ID HMAC), across hospitals; an appeal the citizen files and
-- an operator resolves. An upheld appeal removes the no-show from the count.
CREATE TABLE hospital_no_shows (
    registration_id  text PRIMARY KEY REFERENCES hospital_registrations (id),
    account_id       text NOT NULL REFERENCES accounts (id),
    person_hmac      text NOT NULL,
    at               timestamptz NOT NULL,
    appeal_status    text NOT NULL DEFAULT 'none'
                     CHECK (appeal_status IN ('none', 'pending', 'upheld', 'rejected')),
    appeal_reason    text,
    appeal_filed_at  timestamptz,
    resolved_at      timestamptz,
    resolution_note  text
);
CREATE INDEX hospital_no_shows_person ON hospital_no_shows (person_hmac, at);

-- Standby (候补) for a department and day, served in id order.
CREATE TABLE hospital_standby (
    id               bigserial PRIMARY KEY,
    account_id       text NOT NULL REFERENCES accounts (id),
    person_hmac      text NOT NULL,
    provider_id      text NOT NULL REFERENCES providers (id),
    department_id    text NOT NULL REFERENCES hospital_departments (id),
    day              date NOT NULL,
    status           text NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'fulfilled', 'cancelled')),
    created_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    registration_id  text
);
CREATE UNIQUE INDEX hospital_standby_one_per_person
    ON hospital_standby (person_hmac, department_id, day) WHERE status = 'waiting';
CREATE INDEX hospital_standby_queue
    ON hospital_standby (department_id, day, id) WHERE status = 'waiting';
