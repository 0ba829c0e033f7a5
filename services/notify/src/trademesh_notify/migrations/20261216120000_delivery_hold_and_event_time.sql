-- migrate:up
-- A disabled channel's pending deliveries are held (not sent, not failed) until it is enabled
-- again; the event's own time is kept for the delivery latency metric; the owner's list of a
-- channel's deliveries (its dead letters first of all) reads newest first by channel.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'held', 'sent', 'dead'));
ALTER TABLE deliveries ADD COLUMN event_time timestamptz;
CREATE INDEX deliveries_of_channel ON deliveries (channel_id, status, created_at DESC, event_id DESC);

-- migrate:down
DROP INDEX deliveries_of_channel;
ALTER TABLE deliveries DROP COLUMN event_time;
UPDATE deliveries SET status = 'pending' WHERE status = 'held';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'dead'));
