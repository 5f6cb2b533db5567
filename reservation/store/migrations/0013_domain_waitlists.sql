-- Domain waitlists (issue 5): hospital standby over a day range, for a department or one
-- doctor, until a deadline. An entry made before this migration keeps its one day
-- (last_day = day) and waits until that day ends (deadline NULL).
ALTER TABLE hospital_standby
    ADD COLUMN doctor_id text REFERENCES hospital_doctors (id),
    ADD COLUMN last_day  date,
    ADD COLUMN deadline  timestamptz;
UPDATE hospital_standby SET last_day = day WHERE last_day IS NULL;
ALTER TABLE hospital_standby ALTER COLUMN last_day SET NOT NULL;
ALTER TABLE hospital_standby ADD CONSTRAINT hospital_standby_range CHECK (last_day >= day);
ALTER TABLE hospital_standby DROP CONSTRAINT hospital_standby_status_check;
ALTER TABLE hospital_standby ADD CONSTRAINT hospital_standby_status_check
    CHECK (status IN ('waiting', 'fulfilled', 'cancelled', 'ended'));

-- One waiting entry per person for the same request (department or doctor, day range).
DROP INDEX hospital_standby_one_per_person;
CREATE UNIQUE INDEX hospital_standby_one_per_person
    ON hospital_standby (person_hmac, department_id, day, last_day, (COALESCE(doctor_id, '')))
    WHERE status = 'waiting';
-- The line of a department over days (range lookups), and the deadlines.
DROP INDEX hospital_standby_queue;
CREATE INDEX hospital_standby_queue
    ON hospital_standby (department_id, id) WHERE status = 'waiting';
CREATE INDEX hospital_standby_deadline
    ON hospital_standby (deadline) WHERE status = 'waiting';

-- Vaccine waitlist (issue 5): a citizen (or a consenting listed person) waits for a
-- campaign's product at one site or any site of a district over a day range, until a
-- deadline. The units are the (resource, day) pairs it waits on (a product at a site).
CREATE TABLE vaccine_waitlist (
    id               text PRIMARY KEY,      -- derived from (account, Idempotency-Key)
    seq              bigserial NOT NULL,    -- the line: filing order
    account_id       text NOT NULL REFERENCES accounts (id),
    idempotency_key  text NOT NULL,
    person_hmac      text NOT NULL,
    passenger_id     text,                  -- NULL: the account holder themself
    campaign_id      text NOT NULL REFERENCES vaccine_campaigns (id),
    product_code     text NOT NULL REFERENCES vaccine_products (code),
    site_id          text REFERENCES providers (id),  -- one site, or
    city_code        text,                  -- every site of (city_code, district)
    district         text,
    first_day        date NOT NULL,
    last_day         date NOT NULL CHECK (last_day >= first_day),
    deadline         timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'fulfilled', 'cancelled', 'ended')),
    created_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    end_reason       text,
    series_id        text,
    UNIQUE (account_id, idempotency_key),
    CHECK ((site_id IS NULL) <> (district IS NULL))
);
CREATE INDEX vaccine_waitlist_account ON vaccine_waitlist (account_id, seq);
CREATE INDEX vaccine_waitlist_deadline ON vaccine_waitlist (deadline) WHERE status = 'waiting';
CREATE TABLE vaccine_waitlist_units (
    waitlist_id  text NOT NULL REFERENCES vaccine_waitlist (id),
    resource_id  text NOT NULL REFERENCES resources (id),
    day          date NOT NULL,
    PRIMARY KEY (waitlist_id, resource_id, day)
);
CREATE INDEX vaccine_waitlist_units_unit ON vaccine_waitlist_units (resource_id, day);
