-- migrate:up
-- An account's buying-power terms (docs/decisions/0112-buying-power.md): `cash` borrows nothing
-- and sells only what it holds unless allow_short; `margin` reaches max_leverage x equity. The
-- paper venue refuses a fill the account cannot pay for under them.
ALTER TABLE accounts
    ADD COLUMN margin_mode  text    NOT NULL DEFAULT 'cash' CHECK (margin_mode IN ('cash', 'margin')),
    ADD COLUMN max_leverage numeric NOT NULL DEFAULT 1 CHECK (max_leverage >= 1),
    ADD COLUMN allow_short  boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT accounts_cash_leverage CHECK (margin_mode = 'margin' OR max_leverage = 1);

-- migrate:down
ALTER TABLE accounts
    DROP CONSTRAINT accounts_cash_leverage,
    DROP COLUMN allow_short,
    DROP COLUMN max_leverage,
    DROP COLUMN margin_mode;
