-- A ticket's id is '<hold id>.<passenger no>' (domain.bookings.ticket_id), so its primary
-- key already makes (hold_id, passenger_no) unique; the check below says so to Postgres.
--
-- Why the second unique constraint goes: the order's request path and the persister (from
-- the seat event) upsert the same new ticket rows at the same moment, each with ON
-- CONFLICT (id). Postgres settles a race on the conflict target (one writer updates), but
-- a race on any other unique index is an error: a 500 on POST /v1/orders, seen in a
-- 500-user rush and reproduced by tests/store/test_booking_upserts.py.
ALTER TABLE tickets ADD CONSTRAINT tickets_id_is_hold_and_passenger
    CHECK (id = hold_id || '.' || passenger_no);
CREATE INDEX tickets_hold ON tickets (hold_id, passenger_no);
ALTER TABLE tickets DROP CONSTRAINT tickets_hold_id_passenger_no_key;
