-- migrate:up
-- Every order's story (decision 0113): a manual intent recorded INITIALIZED before risk decides
-- it, a denied order kept DENIED. `reason_code` is the decision's machine-readable reason (risk's
-- DenialReason); `reduce_only` is kept so that a re-sent order is told from another one under a
-- used client order id.
ALTER TABLE orders ADD COLUMN reason_code text;
ALTER TABLE orders ADD COLUMN reduce_only boolean NOT NULL DEFAULT false;

-- migrate:down
ALTER TABLE orders DROP COLUMN reduce_only;
ALTER TABLE orders DROP COLUMN reason_code;
