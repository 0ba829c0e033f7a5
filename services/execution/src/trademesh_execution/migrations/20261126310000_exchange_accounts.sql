-- migrate:up
-- Exchange accounts: the API key and secret sealed by trademesh_keystore (AES-256-GCM under a
-- data key of their own, wrapped by the master key; bound to the account id and the exchange),
-- and the key masked for lists. Paper accounts have neither.
ALTER TABLE accounts ADD COLUMN credentials jsonb;
ALTER TABLE accounts ADD COLUMN api_key_masked text;
ALTER TABLE accounts ADD CONSTRAINT accounts_credentials CHECK ((venue = 'paper') = (credentials IS NULL));

-- migrate:down
ALTER TABLE accounts DROP CONSTRAINT accounts_credentials;
ALTER TABLE accounts DROP COLUMN api_key_masked;
ALTER TABLE accounts DROP COLUMN credentials;
