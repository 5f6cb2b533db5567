-- Train timetables: stations, lines, coach compositions, trains with their stops and
-- service calendar, and train runs (a train on one service date). Seat inventory itself is
-- live in Redis (inventory/seat_engine.py); a run's seat map is published there lazily.

CREATE TABLE stations (
    code      text PRIMARY KEY,            -- three capital letters, e.g. VNP
    name_zh   text NOT NULL,               -- 北京南
    name_en   text NOT NULL,               -- Beijing South (pinyin with English suffix)
    city      text NOT NULL
);
-- Prefix search on either name (lower() so "bei" finds "Beijing South").
CREATE INDEX stations_name_en ON stations (lower(name_en) text_pattern_ops);
CREATE INDEX stations_name_zh ON stations (name_zh text_pattern_ops);

CREATE TABLE lines (
    code  text PRIMARY KEY,                -- e.g. jinghu-hsr
    name  text NOT NULL
);

CREATE TABLE compositions (
    id           text PRIMARY KEY,         -- e.g. CR400AF-8
    description  text NOT NULL DEFAULT ''
);

-- One class section of one coach (a coach may carry two classes, e.g. business + first).
CREATE TABLE coach_sections (
    composition_id  text NOT NULL REFERENCES compositions (id),
    coach           text NOT NULL,          -- two digits, 01..
    seat_class      text NOT NULL CHECK (seat_class IN ('business', 'first', 'second', 'sleeper')),
    layout          text NOT NULL CHECK (layout IN ('1+2', '2+2', '2+3', 'sleeper4', 'sleeper6')),
    first_row       integer NOT NULL CHECK (first_row >= 1),
    rows            integer NOT NULL CHECK (rows >= 1),
    PRIMARY KEY (composition_id, coach, seat_class)
);

CREATE TABLE trains (
    number          text PRIMARY KEY,       -- G1, D701, Z11
    kind            text NOT NULL CHECK (kind IN ('G', 'C', 'D', 'Z', 'T', 'K')),
    line_code       text REFERENCES lines (code),
    composition_id  text NOT NULL REFERENCES compositions (id),
    departs_min     integer NOT NULL CHECK (departs_min >= 0 AND departs_min < 1440),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Times are minutes after the origin departure, so overnight trains need no dates.
CREATE TABLE train_stops (
    train_number  text NOT NULL REFERENCES trains (number),
    seq           integer NOT NULL CHECK (seq >= 0),
    station_code  text NOT NULL REFERENCES stations (code),
    arrive_min    integer,
    depart_min    integer,
    km            integer NOT NULL CHECK (km >= 0),
    PRIMARY KEY (train_number, seq),
    UNIQUE (train_number, station_code)
);
CREATE INDEX train_stops_station ON train_stops (station_code);

-- Service calendar: the train runs on the dates in [valid_from, valid_to] whose ISO
-- weekday (1 = Monday) appears in weekdays.
CREATE TABLE train_calendar (
    train_number  text PRIMARY KEY REFERENCES trains (number),
    valid_from    date NOT NULL,
    valid_to      date NOT NULL,
    weekdays      text NOT NULL DEFAULT '1234567' CHECK (weekdays ~ '^[1-7]{1,7}$'),
    CHECK (valid_to >= valid_from)
);

-- A train on one service date (the date it leaves its origin). Materialised for the sale
-- horizon; seats_published_at says its seat map went to Redis once, so a map missing
-- there later means Redis lost data (sales closed until a rebuild), never "publish empty".
CREATE TABLE train_runs (
    id                  text PRIMARY KEY,   -- <number>-<yyyymmdd>, e.g. G1-20261123
    train_number        text NOT NULL REFERENCES trains (number),
    service_date        date NOT NULL,
    departs_at          timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'cancelled')),
    seats_published_at  timestamptz,
    UNIQUE (train_number, service_date)
);
CREATE INDEX train_runs_date ON train_runs (service_date);
