-- migrate:up
-- The audit log (engine.py defines every column and the hash). Unqualified names land in the
-- service's schema.
CREATE TABLE audit_log (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    event_id    uuid        NOT NULL UNIQUE,
    topic       text        NOT NULL,
    action      text        NOT NULL,
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('user', 'service')),
    actor       text        NOT NULL,
    target_kind text        CHECK (target_kind IN ('client_order_id', 'bot_id', 'account_id', 'user_id')),
    target      text,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    trace_id    text        CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    -- json, not jsonb: the exact text is kept (jsonb would refuse a \u0000 in a string, and an
    -- event the log cannot store would be an event missing from it).
    event       json        NOT NULL,
    prev_hash   bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    CHECK ((target_kind IS NULL) = (target IS NULL))
);
-- Search filters one column and pages by seq, newest first.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

-- The chain's last row, one row only. An append locks it (SELECT ... FOR UPDATE) in the
-- transaction that inserts the row, so appends from every replica and partition queue here and
-- the chain stays linear. It also records the last row, so that rows removed from the end of
-- the log are found. Row 1 chains from 32 zero bytes (engine.GENESIS_HASH).
CREATE TABLE chain_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint  NOT NULL CHECK (seq >= 0),
    hash     bytea   NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- Second line of defence (the first is the role below): whoever runs it, an UPDATE, DELETE or
-- TRUNCATE of the log fails. Statement triggers, so that a statement touching no row fails too.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING HINT = 'Audit rows are never changed or removed.';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The role the service's connections SET ROLE to (store.WRITER_ROLE): it may read and append
-- to the log and move the chain head, never update, delete or truncate the log. Roles are
-- cluster-wide, so it may exist already (another schema of the service, a replica migrating at
-- the same moment): created if missing, and kept by migrate:down for the same reason.
DO $$
BEGIN
    CREATE ROLE trademesh_audit_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
DO $$
BEGIN
    -- A superuser may SET ROLE to any role; any other login user must be a member.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT trademesh_audit_writer TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO trademesh_audit_writer', current_schema());
END
$$;
GRANT SELECT, INSERT ON audit_log TO trademesh_audit_writer;
GRANT SELECT, UPDATE ON chain_head TO trademesh_audit_writer;
-- The bus records each handled event id in the inbox, in the transaction of the append.
GRANT SELECT, INSERT ON inbox TO trademesh_audit_writer;

-- migrate:down
REVOKE ALL ON inbox FROM trademesh_audit_writer;
DO $$
BEGIN
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM trademesh_audit_writer', current_schema());
END
$$;
DROP TABLE chain_head;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
