-- migrate:up
-- An admin's limits for an account: in place of the platform's default limits, field by field
-- (higher or lower). With the defaults they are the account's ceilings: the account's own limits
-- (account_limits, instrument_limits) may only be at or under them, and the stricter applies.
-- Written only by an admin (PUT /api/v1/accounts/{id}/limits as an admin).
CREATE TABLE admin_limits (
    account_id uuid        PRIMARY KEY,
    limits     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE admin_limits;
