-- migrate:up
-- The W3C traceparent an order was placed under (the approval's, and so the gateway's or the
-- bot's): every later event of the order (fills from market data or a venue, expiry) is sent
-- under it, so one order's path is one trace.
ALTER TABLE orders ADD COLUMN traceparent text;

-- migrate:down
ALTER TABLE orders DROP COLUMN traceparent;
