-- migrate:up
-- What reconciliation with a venue found disagreeing, kept once per finding (`dedupe_key`: the
-- same venue order still unknown on the next run is the same discrepancy, not a new one), with
-- what the service did about it. Each new row is also a DiscrepancyDetected event.
CREATE TABLE discrepancies (
    id              bigserial   PRIMARY KEY,
    account_id      uuid        NOT NULL,
    venue           text        NOT NULL,
    kind            text        NOT NULL,
    client_order_id text,
    instrument_id   text,
    venue_ref       text,
    detail          text        NOT NULL,
    resolution      text,
    detected_at     timestamptz NOT NULL,
    dedupe_key      text        NOT NULL UNIQUE
);
CREATE INDEX discrepancies_by_account ON discrepancies (account_id, detected_at DESC);

-- The last reconciliation of each exchange account: when it ran, and how it ended.
ALTER TABLE accounts
    ADD COLUMN reconciled_at    timestamptz,
    ADD COLUMN reconcile_result jsonb;

-- Live orders are found by the venue's id too (its trade lists name only that).
CREATE INDEX orders_by_venue_order ON orders (account_id, venue_order_id)
    WHERE venue_order_id IS NOT NULL;

-- migrate:down
DROP INDEX orders_by_venue_order;
ALTER TABLE accounts DROP COLUMN reconcile_result, DROP COLUMN reconciled_at;
DROP TABLE discrepancies;
