-- The audit log (issue 5): append-only and hash-chained. See reservation/fairness/audit.py
-- for the exact hash rule and docs/fairness.md for verifying an export.
--
-- Two chains run through the rows: `prev_hash` links every entry to the entry before it
-- (seq - 1; all zeros for seq 1), `subject_prev_hash` links it to the previous entry of
-- the same subject (a sale, a resource...; all zeros for the subject's first), so one
-- sale's export is a complete chain of its own. `seq` is assigned by the appender under
-- an advisory lock as last + 1, not by a sequence: sequences leave gaps on rollback, and
-- a gapless seq makes a deleted row visible. The UNIQUE constraints make a fork (two
-- entries claiming one predecessor) impossible even for a writer that skipped the lock.
CREATE TABLE audit_log (
    seq                bigint PRIMARY KEY CHECK (seq > 0),
    at                 timestamptz NOT NULL,
    kind               text NOT NULL CHECK (kind <> ''),
    subject            text NOT NULL CHECK (subject <> ''),
    actor              text NOT NULL CHECK (actor <> ''),
    payload            jsonb NOT NULL,
    prev_hash          text NOT NULL UNIQUE CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    subject_prev_hash  text NOT NULL CHECK (subject_prev_hash ~ '^[0-9a-f]{64}$'),
    hash               text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
    UNIQUE (subject, subject_prev_hash)
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);

-- Append-only, for everyone including the table's owner: UPDATE, DELETE and TRUNCATE
-- raise. A superuser (or the owner, with ALTER TABLE … DISABLE TRIGGER) can still get
-- around this; that is what the hash chain and `fairseat audit verify` are for. In
-- production the service should connect as a role that is not the owner and holds only
-- SELECT and INSERT on this table (GRANT SELECT, INSERT ON audit_log TO <app role>).
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
