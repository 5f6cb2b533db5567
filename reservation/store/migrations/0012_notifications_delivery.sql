-- Notification delivery (issue 6), on top of the recording tables of 0006.
--
-- Every recorded notification gets a `notification_pending` row in the same transaction
-- (trigger below): the notifier's work queue. Ids of a bigserial commit out of order, so a
-- "delivered up to id N" watermark could skip a row that commits late; a queue row per
-- notification cannot be skipped. The row goes once every configured channel has a
-- `notification_deliveries` row (delivered, or failed for good), so the queue stays small.
ALTER TABLE notification_deliveries
    ADD COLUMN outcome  text NOT NULL DEFAULT 'delivered' CHECK (outcome IN ('delivered', 'failed')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 1);

CREATE TABLE notification_pending (
    notification_id  bigint PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    -- Failed passes so far; the next one waits until next_attempt_at (backoff).
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT '-infinity',
    -- A notifier working on the row owns it until then; a crashed one's lease runs out
    -- and another notifier takes the row over.
    leased_until     timestamptz NOT NULL DEFAULT '-infinity'
);

-- The inbox's unread count.
CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL;

-- Live pages: every HTTP process LISTENs on this channel with one connection and wakes
-- the open streams of the account; NOTIFY is sent at COMMIT, so a stream never sees a
-- row that is not visible yet. Payload: "<id> <account id>".
CREATE FUNCTION notifications_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_pending (notification_id) VALUES (NEW.id);
    PERFORM pg_notify('fairseat_notifications', NEW.id::text || ' ' || NEW.account_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_enqueue AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_enqueue();

-- Rows recorded before this migration (0006 was live already) are delivered too.
INSERT INTO notification_pending (notification_id)
SELECT n.id FROM notifications n
WHERE NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.id);
