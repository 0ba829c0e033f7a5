-- migrate:up
-- An exchange account's settlement currency (docs/decisions/0116-venue-buying-power.md): its
-- buying power is the venue's total of it, checked for orders quoted in it. NULL for a paper
-- account, whose cash has no currency of its own; accounts opened before it settle in USDT.
ALTER TABLE accounts
    ADD COLUMN currency text CHECK (currency ~ '^[A-Z0-9]{1,16}$');
UPDATE accounts SET currency = 'USDT' WHERE venue <> 'paper';

-- migrate:down
ALTER TABLE accounts DROP COLUMN currency;
