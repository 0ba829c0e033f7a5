-- migrate:up
-- Every access token carries its user's session version. Disabling a user, changing their role or
-- their password raises it (and stamps when): services refuse tokens below it at once, without
-- waiting for them to expire. Revoked API keys are refused by their id (api_keys.revoked_at).
ALTER TABLE users
    ADD COLUMN session_version     int         NOT NULL DEFAULT 1 CHECK (session_version >= 1),
    ADD COLUMN sessions_ended_at timestamptz;
-- The revocations that can still matter (auth's snapshot for services that start) are the
-- recent ones.
CREATE INDEX users_by_sessions_ended ON users (sessions_ended_at) WHERE sessions_ended_at IS NOT NULL;
CREATE INDEX api_keys_by_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;

-- migrate:down
DROP INDEX api_keys_by_revoked;
DROP INDEX users_by_sessions_ended;
ALTER TABLE users DROP COLUMN sessions_ended_at, DROP COLUMN session_version;
