-- migrate:up
-- A cancel asked of a live order: the venue must confirm it (the driver in live.py asks it), so
-- the order stays as it is until the venue says CANCELED (or that it filled first).
ALTER TABLE orders ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;

-- migrate:down
ALTER TABLE orders DROP COLUMN cancel_requested;
