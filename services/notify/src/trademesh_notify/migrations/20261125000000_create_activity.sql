-- migrate:up
-- The sample domain's table (see engine.py). Unqualified names land in the service's schema.
CREATE TABLE activity (
    key             text        NOT NULL,
    direction       text        NOT NULL CHECK (direction IN ('in', 'out')),
    events          bigint      NOT NULL CHECK (events > 0),
    last_event_id   uuid        NOT NULL,
    last_event_type text        NOT NULL,
    last_topic      text        NOT NULL,
    first_at        timestamptz NOT NULL,
    last_at         timestamptz NOT NULL,
    PRIMARY KEY (key, direction)
);

-- migrate:down
DROP TABLE activity;
