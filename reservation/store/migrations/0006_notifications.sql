-- Notifications (issue 6): a transactional outbox in Postgres.
--
-- A workflow records a notification in the same transaction as the change it reports, so
-- a committed change always has its notification and a rolled-back one never does.
-- `dedupe_key` makes recording idempotent (a replayed inventory event, a retried
-- request). The notifier delivers each row once per channel: `notification_deliveries`
-- holds one row per (notification, channel) once delivered, so a restart resumes where
-- it stopped and never sends twice.
CREATE TABLE notifications (
    id           bigserial PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id),
    kind         text NOT NULL CHECK (kind <> ''),
    subject      text NOT NULL,
    payload      jsonb NOT NULL,
    dedupe_key   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    read_at      timestamptz
);
CREATE INDEX notifications_account ON notifications (account_id, id DESC);

CREATE TABLE notification_deliveries (
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    channel          text NOT NULL,
    delivered_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, channel)
);

-- Reminders are scheduled rows, fired by the notifier from an index on `remind_at`
-- (one range scan per pass, not a poll of every booking).
CREATE TABLE reminders (
    id           bigserial PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id),
    subject      text NOT NULL,
    remind_at    timestamptz NOT NULL,
    payload      jsonb NOT NULL,
    dedupe_key   text NOT NULL UNIQUE,
    fired_at     timestamptz,
    cancelled_at timestamptz
);
CREATE INDEX reminders_due ON reminders (remind_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
