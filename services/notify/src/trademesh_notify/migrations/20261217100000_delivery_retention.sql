-- migrate:up
-- What the retention deletes, found without a scan of every delivery: sent ones by when they
-- were sent, dead ones by their last attempt, held unowned notices by when they were held.
CREATE INDEX deliveries_sent_at ON deliveries (sent_at) WHERE status = 'sent';
CREATE INDEX deliveries_dead_at ON deliveries (next_attempt_at) WHERE status = 'dead';
CREATE INDEX unowned_notices_held_at ON unowned_notices (held_at);

-- migrate:down
DROP INDEX unowned_notices_held_at;
DROP INDEX deliveries_dead_at;
DROP INDEX deliveries_sent_at;
