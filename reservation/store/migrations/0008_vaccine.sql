-- Vaccination (issue 6): products with dose schedules, campaigns (eligibility), sites,
-- appointments, doses given, consent for proxy booking, priority groups.
--
-- A site is a provider of kind 'vaccination'; each (site, product) is one resource whose
-- slots are the site's daily session time slots for that product (so every slot of a
-- product at a site lives in one shard, and a dose-1 + dose-2 series is one Lua call).
-- ID numbers are never stored: people are named by the keyed HMAC of their ID number.

CREATE TABLE vaccine_products (
    code         text PRIMARY KEY,
    name         text NOT NULL,
    doses        smallint NOT NULL CHECK (doses BETWEEN 1 AND 6),
    -- [[min_days, max_days], ...]: one window per gap between consecutive doses.
    intervals    jsonb NOT NULL DEFAULT '[]',
    -- Dose 1 is booked only together with dose 2 (one atomic series).
    book_series  boolean NOT NULL DEFAULT false,
    CHECK (jsonb_array_length(intervals) = doses - 1)
);

CREATE TABLE vaccine_campaigns (
    id               text PRIMARY KEY,
    product_code     text NOT NULL REFERENCES vaccine_products (code),
    name             text NOT NULL,
    min_age          smallint NOT NULL DEFAULT 0,
    max_age          smallint NOT NULL DEFAULT 200,
    -- Empty: open to everyone in the age band; else only people in one of these groups.
    priority_groups  text[] NOT NULL DEFAULT '{}',
    CHECK (min_age <= max_age)
);

CREATE TABLE vaccine_sites (
    provider_id  text PRIMARY KEY REFERENCES providers (id),
    province     text NOT NULL,
    city_code    text NOT NULL,
    city         text NOT NULL,
    city_en      text NOT NULL,
    district     text NOT NULL,
    address      text NOT NULL DEFAULT ''
);
CREATE INDEX vaccine_sites_city ON vaccine_sites (city_code, district);
CREATE INDEX vaccine_sites_city_name ON vaccine_sites (city, district);

-- Priority groups (medical staff, transport workers...) are attested by an operator, never
-- self-declared: they decide who may book a priority campaign.
CREATE TABLE vaccine_person_groups (
    person_hmac  text NOT NULL,
    group_code   text NOT NULL,
    granted_at   timestamptz NOT NULL,
    PRIMARY KEY (person_hmac, group_code)
);

-- Consent of a listed person (e.g. an elderly parent) to be booked for by this account.
-- The account holder needs none for themself. Revoking keeps the row (when it was given).
CREATE TABLE vaccine_consents (
    passenger_id  text PRIMARY KEY REFERENCES passengers (id) ON DELETE CASCADE,
    account_id    text NOT NULL REFERENCES accounts (id),
    statement     text NOT NULL,
    consented_at  timestamptz NOT NULL,
    revoked_at    timestamptz
);

-- One row per dose appointment; its id is the hold id of the slot booking (bookings.id),
-- whose inventory state the persister writes. `state` here is the vaccination view:
-- held -> confirmed -> given, or cancelled / expired / moved (rescheduled: see moved_to).
-- `series_id` groups the doses booked together (and their reschedulings).
CREATE TABLE vaccine_appointments (
    id                 text PRIMARY KEY,
    series_id          text NOT NULL,
    account_id         text NOT NULL REFERENCES accounts (id),
    person_hmac        text NOT NULL,
    passenger_id       text,             -- NULL: the account holder themself
    person_name        text NOT NULL,
    person_masked      text NOT NULL,
    product_code       text NOT NULL REFERENCES vaccine_products (code),
    campaign_id        text NOT NULL REFERENCES vaccine_campaigns (id),
    dose               smallint NOT NULL CHECK (dose >= 1),
    slot_id            text NOT NULL REFERENCES slots (id),
    provider_id        text NOT NULL REFERENCES providers (id),
    day                date NOT NULL,
    starts_at          timestamptz NOT NULL,
    state              text NOT NULL CHECK (state IN
                           ('held', 'confirmed', 'given', 'cancelled', 'expired', 'moved')),
    deadline           timestamptz NOT NULL,
    verification_code  text,
    checked_in_at      timestamptz,
    moved_to           text,
    end_reason         text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX vaccine_appointments_person ON vaccine_appointments (person_hmac, product_code);
CREATE INDEX vaccine_appointments_account ON vaccine_appointments (account_id, created_at DESC);
CREATE INDEX vaccine_appointments_series ON vaccine_appointments (series_id, dose);
CREATE INDEX vaccine_appointments_site_day ON vaccine_appointments (provider_id, day);
CREATE UNIQUE INDEX vaccine_appointments_code ON vaccine_appointments (provider_id, verification_code)
    WHERE verification_code IS NOT NULL;

-- A person's vaccination record: one row per dose given (whoever booked it).
CREATE TABLE vaccine_doses (
    person_hmac     text NOT NULL,
    product_code    text NOT NULL REFERENCES vaccine_products (code),
    dose            smallint NOT NULL CHECK (dose >= 1),
    given_on        date NOT NULL,
    given_at        timestamptz NOT NULL,
    provider_id     text NOT NULL REFERENCES providers (id),
    appointment_id  text REFERENCES vaccine_appointments (id),
    lot             text NOT NULL DEFAULT '',
    recorded_by     text NOT NULL,
    PRIMARY KEY (person_hmac, product_code, dose)
);

-- The national catalogue: reference data every deployment starts with.
INSERT INTO vaccine_products (code, name, doses, intervals, book_series) VALUES
    ('flu', '流感疫苗 Influenza vaccine', 1, '[]', false),
    ('covid-inact', '新冠病毒灭活疫苗 COVID-19 inactivated vaccine (Vero cell)', 2,
        '[[21, 42]]', true),
    ('hepb', '乙型肝炎疫苗 Hepatitis B vaccine', 3, '[[28, 60], [150, 240]]', false);

INSERT INTO vaccine_campaigns (id, product_code, name, min_age, max_age, priority_groups) VALUES
    ('flu-season', 'flu', '流感季节接种 Seasonal influenza', 3, 200, '{}'),
    ('covid-adults', 'covid-inact', '成人新冠接种 COVID-19, adults 18–59', 18, 59, '{}'),
    ('covid-elderly', 'covid-inact', '老年人新冠接种 COVID-19, 60 and over', 60, 200, '{}'),
    ('covid-frontline', 'covid-inact', '重点人群 COVID-19, frontline workers', 18, 59,
        '{medical,transport}'),
    ('hepb-adults', 'hepb', '成人乙肝接种 Hepatitis B, adults', 18, 200, '{}');
