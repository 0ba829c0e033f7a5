-- migrate:up
-- Buying power (docs/decisions/0112-buying-power.md). An account's cash as risk counts it (set by
-- an admin through PUT /api/v1/accounts/{id}/buying-power, then moved by every fill; NULL: never
-- funded in risk, so its orders are not checked for cash), its margin mode, leverage, whether it
-- may short, and the fee rate its orders are costed at.
ALTER TABLE accounts
    ADD COLUMN cash         numeric,
    ADD COLUMN margin_mode  text    NOT NULL DEFAULT 'cash' CHECK (margin_mode IN ('cash', 'margin')),
    ADD COLUMN max_leverage numeric NOT NULL DEFAULT 1 CHECK (max_leverage >= 1),
    ADD COLUMN allow_short  boolean NOT NULL DEFAULT false,
    ADD COLUMN fee_bps      numeric NOT NULL DEFAULT 0 CHECK (fee_bps >= 0),
    ADD CONSTRAINT accounts_cash_leverage CHECK (margin_mode = 'margin' OR max_leverage = 1);
-- What an approved order reserves of the account's buying power (its worst-case cost when
-- approved); its unfilled share stays reserved while the order is open, so fills, cancels,
-- rejections and expiry release it, and a restarted service reads it back.
ALTER TABLE decisions ADD COLUMN reserved numeric NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE decisions DROP COLUMN reserved;
ALTER TABLE accounts
    DROP CONSTRAINT accounts_cash_leverage,
    DROP COLUMN fee_bps,
    DROP COLUMN allow_short,
    DROP COLUMN max_leverage,
    DROP COLUMN margin_mode,
    DROP COLUMN cash;
