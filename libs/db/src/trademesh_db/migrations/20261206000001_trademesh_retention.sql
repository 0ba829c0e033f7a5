-- migrate:up
-- The retention deletes by age (trademesh_bus.retention).
CREATE INDEX IF NOT EXISTS inbox_handled_at ON inbox (handled_at);
CREATE INDEX IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- migrate:down
DROP INDEX IF EXISTS outbox_published_at;
DROP INDEX IF EXISTS inbox_handled_at;
