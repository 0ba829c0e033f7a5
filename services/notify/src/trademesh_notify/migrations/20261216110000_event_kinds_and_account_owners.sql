-- migrate:up
-- Every event kind a channel may subscribe to (engine.EventKind), 'approval' reserved for
-- approve-before-trade bots.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_event_kind_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_event_kind_check CHECK (event_kind IN (
    'fill', 'denial', 'rejection', 'bot_state', 'bot_error', 'kill_switch', 'reducing',
    'discrepancy', 'approval'
));

-- Whose an account is, as AccountChanged on orders.events.v1 said (written in the consumer's
-- transaction): the owner of the events that name only an account (TradingStateChanged).
-- An account's owner never changes; the first one learnt is kept.
CREATE TABLE account_owners (
    account_id uuid        PRIMARY KEY,
    owner_id   uuid        NOT NULL,
    learnt_at  timestamptz NOT NULL
);

-- An account's notice that came before notify learnt the account's owner (another topic, and
-- a consumer reading history may meet it first): held, sent to no one, until an AccountChanged
-- names the owner, then enqueued for that owner's channels and deleted, in that consumer
-- transaction.
CREATE TABLE unowned_notices (
    event_id   uuid        PRIMARY KEY,
    account_id uuid        NOT NULL,
    event_kind text        NOT NULL,
    event_type text        NOT NULL,
    body       bytea       NOT NULL,
    event_time timestamptz NOT NULL,
    held_at    timestamptz NOT NULL
);
CREATE INDEX unowned_notices_account ON unowned_notices (account_id, event_time);

-- migrate:down
DROP TABLE unowned_notices;
DROP TABLE account_owners;
DELETE FROM subscriptions WHERE event_kind NOT IN ('fill', 'denial');
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_event_kind_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_event_kind_check
    CHECK (event_kind IN ('fill', 'denial'));
