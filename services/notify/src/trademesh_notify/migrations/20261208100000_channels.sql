-- migrate:up
-- A user's channels, what each is subscribed to, and the deliveries of events to them.
-- Unqualified names land in the service's schema.
CREATE TABLE channels (
    id            uuid        PRIMARY KEY,
    owner_id      uuid        NOT NULL,  -- the user (auth's id): the only one who sees it or gets on it
    kind          text        NOT NULL CHECK (kind IN ('webhook')),
    url           text        NOT NULL CHECK (length(url) <= 2048),
    -- The signing secret sealed by trademesh_keystore (AAD: the channel id), never returned
    -- after creation and never logged.
    sealed_secret bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    disabled_at   timestamptz
);
CREATE INDEX channels_owner ON channels (owner_id, created_at, id);

CREATE TABLE subscriptions (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    event_kind text NOT NULL CHECK (event_kind IN ('fill', 'denial')),
    PRIMARY KEY (channel_id, event_kind)
);

-- One row per event and channel: the deduplication key of at-least-once delivery (a redelivered
-- event writes nothing new). Written in the consumer's transaction with its inbox entry, then
-- sent by the delivery loop: pending until sent, dead after the last attempt failed.
CREATE TABLE deliveries (
    event_id        uuid        NOT NULL,
    channel_id      uuid        NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    owner_id        uuid        NOT NULL,
    event_kind      text        NOT NULL,
    event_type      text        NOT NULL,
    body            bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    PRIMARY KEY (event_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON deliveries (owner_id, created_at) WHERE status = 'dead';

-- migrate:down
DROP TABLE deliveries;
DROP TABLE subscriptions;
DROP TABLE channels;
