-- migrate:up
-- The version of risk's configuration: the limits (account_limits, instrument_limits,
-- admin_limits) and the instruments' rules (instrument_rules). Each replica keeps them in memory
-- and reads this number with the state of the accounts it decides for; when it differs from the
-- one its copy was read at, it reads them again (docs/decisions/0109-risk-config-cache.md).
-- Triggers bump it in the transaction of every change, whoever makes it, so that a change and
-- its new version commit together. The kill switches and trading states are not in it: they are
-- read with the accounts every time.
CREATE TABLE config_version (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    version    bigint  NOT NULL DEFAULT 0,
    -- The transaction that last bumped it: one bump per transaction, however many rows change.
    changed_by xid8
);
INSERT INTO config_version (id) VALUES (true);

-- Bound to this schema's tables whatever the caller's search_path.
CREATE FUNCTION bump_config_version() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE config_version SET version = version + 1, changed_by = pg_current_xact_id()
    WHERE changed_by IS DISTINCT FROM pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE TRIGGER account_limits_changed AFTER INSERT OR UPDATE OR DELETE ON account_limits
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER account_limits_truncated AFTER TRUNCATE ON account_limits
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER instrument_limits_changed AFTER INSERT OR UPDATE OR DELETE ON instrument_limits
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER instrument_limits_truncated AFTER TRUNCATE ON instrument_limits
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER admin_limits_changed AFTER INSERT OR UPDATE OR DELETE ON admin_limits
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER admin_limits_truncated AFTER TRUNCATE ON admin_limits
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER instrument_rules_changed AFTER INSERT OR UPDATE OR DELETE ON instrument_rules
    FOR EACH ROW EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER instrument_rules_truncated AFTER TRUNCATE ON instrument_rules
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();

-- migrate:down
DROP TRIGGER instrument_rules_truncated ON instrument_rules;
DROP TRIGGER instrument_rules_changed ON instrument_rules;
DROP TRIGGER admin_limits_truncated ON admin_limits;
DROP TRIGGER admin_limits_changed ON admin_limits;
DROP TRIGGER instrument_limits_truncated ON instrument_limits;
DROP TRIGGER instrument_limits_changed ON instrument_limits;
DROP TRIGGER account_limits_truncated ON account_limits;
DROP TRIGGER account_limits_changed ON account_limits;
DROP FUNCTION bump_config_version();
DROP TABLE config_version;
