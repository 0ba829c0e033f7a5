-- migrate:up
-- An exchange account's buying power from its venue (docs/decisions/0116-venue-buying-power.md):
-- its settlement currency (cash is the venue's total of it; orders quoted in another currency
-- are not checked for cash) and the venue's totals of the other currencies it holds, as decimal
-- strings by currency (a sell takes the base held there). Both set by execution's AccountChanged
-- and moved by the account's fills; NULL for a paper account.
ALTER TABLE accounts
    ADD COLUMN currency text,
    ADD COLUMN holdings jsonb CHECK (holdings IS NULL OR jsonb_typeof(holdings) = 'object');

-- migrate:down
ALTER TABLE accounts DROP COLUMN holdings, DROP COLUMN currency;
