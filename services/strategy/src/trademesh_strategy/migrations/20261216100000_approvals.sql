-- migrate:up
-- Approval mode: a bot with approval 'required' asks its owner before each order reaches risk;
-- an order waits at most approval_expiry_s seconds for the decision.
ALTER TABLE bots
    ADD COLUMN approval text NOT NULL DEFAULT 'none' CHECK (approval IN ('none', 'required')),
    ADD COLUMN approval_expiry_s integer NOT NULL DEFAULT 60
        CHECK (approval_expiry_s BETWEEN 10 AND 86400);

-- One row per order an approval-mode bot asked for: the intent as it will be published once
-- approved, and its decision. The decision is a conditional update (WHERE status = 'pending'
-- AND expires_at > now), in the transaction that writes the intent to the outbox: an approval
-- is decided once, whatever restarts or races.
CREATE TABLE approvals (
    approval_id     uuid        PRIMARY KEY,
    bot_id          uuid        NOT NULL REFERENCES bots (bot_id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL,
    client_order_id text        NOT NULL UNIQUE
                                REFERENCES bot_orders (client_order_id) ON DELETE CASCADE,
    intent          jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by      uuid,
    decided_at      timestamptz,
    -- How the owner decided: 'api' (an access token) or 'link' (a signed link); NULL: expired.
    channel         text        CHECK (channel IN ('api', 'link')),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX approvals_by_bot ON approvals (bot_id, created_at, approval_id);
CREATE INDEX approvals_due ON approvals (expires_at) WHERE status = 'pending';

-- migrate:down
DROP TABLE approvals;
ALTER TABLE bots DROP COLUMN approval, DROP COLUMN approval_expiry_s;
