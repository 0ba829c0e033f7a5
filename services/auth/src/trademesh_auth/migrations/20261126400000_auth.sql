-- migrate:up
-- Users: e-mail (stored lower case) and an Argon2id hash; a role; pending (awaiting an admin's
-- approval), active or disabled.
CREATE TABLE users (
    user_id       uuid        PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'trader', 'viewer')),
    status        text        NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Refresh tokens, opaque, kept as their SHA-256. Each use replaces the token by a new one of the
-- same family; a token used twice means it was stolen: the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash text        PRIMARY KEY,
    family_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

-- API keys for programmatic clients: shown once, kept as the SHA-256 of the whole key.
CREATE TABLE api_keys (
    key_id       text        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name         text        NOT NULL,
    key_hash     text        NOT NULL,
    scopes       text[]      NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

-- The access tokens' signing keys (Ed25519): the private key sealed by the keystore (AAD: kid),
-- the public one as a JWK. The newest unretired key signs; a retired key stays in the JWKS
-- until the tokens it signed have expired.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    private_key jsonb       NOT NULL,
    public_jwk  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

-- Failed logins per throttle key (`ip:<address>`, `user:<id>`, `user_ip:<id>|<address>`).
CREATE TABLE login_failures (
    key          text        PRIMARY KEY,
    failures     int         NOT NULL,
    last_failure timestamptz NOT NULL
);

-- migrate:down
DROP TABLE login_failures;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE refresh_tokens;
DROP TABLE users;
