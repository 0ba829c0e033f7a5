-- migrate:up
-- The keyed chain (engine.py, keys.py): each row names the chain key its link was made with.
-- Rows appended before this migration keep key_id NULL and their unkeyed SHA-256 links: the
-- unkeyed prefix, which ends where the first chain key's keyed_from says.
ALTER TABLE audit_log ADD COLUMN key_id text CHECK (key_id ~ '^[0-9]{8}-[0-9a-f]{8}$');

-- The chain keys, each a trademesh_keystore SealedSecret (JSON) sealed by the keystore's master
-- key, with its id and keyed_from as the seal's context: the database holds no key it can use,
-- and a key row whose keyed_from was changed no longer opens. Never changed or removed: a key
-- verifies the rows it linked for as long as the log exists.
CREATE TABLE chain_keys (
    key_id     text        PRIMARY KEY CHECK (key_id ~ '^[0-9]{8}-[0-9a-f]{8}$'),
    sealed_key jsonb       NOT NULL,
    keyed_from bigint      NOT NULL CHECK (keyed_from > 0),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every row appended from now on is keyed. A replica still running the code from before (a
-- rolling upgrade) would append unkeyed rows after the keyed chain began, which verify reports
-- as a break: its insert fails instead, as a serialization failure, which the bus retries and
-- never dead-letters, so the event waits for a replica that keys it.
CREATE FUNCTION audit_log_keyed_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log rows are keyed: an unkeyed append refused'
        USING ERRCODE = 'serialization_failure',
              HINT = 'An audit service from before the keyed chain is still running.';
END
$$;
CREATE TRIGGER audit_log_keyed_only BEFORE INSERT ON audit_log
    FOR EACH ROW WHEN (NEW.key_id IS NULL) EXECUTE FUNCTION audit_log_keyed_only();

-- The chain keys are append-only like the log: the same function, now naming its table.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'Audit rows and chain keys are never changed or removed.';
END
$$;
CREATE TRIGGER chain_keys_no_update_delete BEFORE UPDATE OR DELETE ON chain_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER chain_keys_no_truncate BEFORE TRUNCATE ON chain_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The first replica to start makes the first key (keys.py), as the writer role.
GRANT SELECT, INSERT ON chain_keys TO trademesh_audit_writer;

-- migrate:down
-- Keyed rows keep HMAC links that the unkeyed code cannot check: after this, verify (of the code
-- from before) reports the log broken at the first keyed row.
REVOKE ALL ON chain_keys FROM trademesh_audit_writer;
DROP TABLE chain_keys;
DROP TRIGGER audit_log_keyed_only ON audit_log;
DROP FUNCTION audit_log_keyed_only();
ALTER TABLE audit_log DROP COLUMN key_id;
