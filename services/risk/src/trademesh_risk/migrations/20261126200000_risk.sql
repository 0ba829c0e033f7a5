-- migrate:up
-- Risk limits per account, and per account and instrument (the stricter of both applies).
CREATE TABLE account_limits (
    account_id uuid        PRIMARY KEY,
    limits     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE instrument_limits (
    account_id    uuid        NOT NULL,
    instrument_id text        NOT NULL,
    limits        jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, instrument_id)
);
-- The venue's market info: precision and minimums per instrument.
CREATE TABLE instrument_rules (
    instrument_id text        PRIMARY KEY,
    rules         jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Each account's trading state, kill switch and realised PnL of the current UTC day. Its row is
-- locked while an intent of the account is checked, so one account's intents are checked one
-- at a time even across replicas.
CREATE TABLE accounts (
    account_id     uuid        PRIMARY KEY,
    state          text        NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    state_reason   text,
    kill_switch    boolean     NOT NULL DEFAULT false,
    kill_reason    text,
    pnl_day        date        NOT NULL DEFAULT (now() AT TIME ZONE 'utc')::date,
    realised_today numeric     NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The one platform-wide kill switch.
CREATE TABLE global_switch (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    engaged    boolean     NOT NULL DEFAULT false,
    reason     text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO global_switch (id) VALUES (true);

-- Every intent decided, once per client order id: a re-sent intent changes nothing.
CREATE TABLE decisions (
    client_order_id text        PRIMARY KEY,
    account_id      uuid        NOT NULL,
    instrument_id   text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity        numeric     NOT NULL,
    approved        boolean     NOT NULL,
    reason          text,
    filled          numeric     NOT NULL DEFAULT 0,
    open            boolean     NOT NULL,
    decided_at      timestamptz NOT NULL
);
CREATE INDEX decisions_open ON decisions (account_id, instrument_id) WHERE open;
CREATE INDEX decisions_approved_at ON decisions (account_id, decided_at) WHERE approved;

-- Filled positions, average cost and realised PnL, per account and instrument.
CREATE TABLE positions (
    account_id    uuid    NOT NULL,
    instrument_id text    NOT NULL,
    position      numeric NOT NULL DEFAULT 0,
    avg_price     numeric NOT NULL DEFAULT 0,
    realised      numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, instrument_id)
);
CREATE TABLE fills (
    client_order_id text NOT NULL,
    trade_id        text NOT NULL,
    PRIMARY KEY (client_order_id, trade_id)
);

-- The last price of each instrument (ticks, else bar closes), saved now and then so that a
-- restarted service can check orders before the next price arrives.
CREATE TABLE prices (
    instrument_id text        PRIMARY KEY,
    price         numeric     NOT NULL,
    ts            timestamptz NOT NULL
);

-- migrate:down
DROP TABLE prices;
DROP TABLE fills;
DROP TABLE positions;
DROP TABLE decisions;
DROP TABLE global_switch;
DROP TABLE accounts;
DROP TABLE instrument_rules;
DROP TABLE instrument_limits;
DROP TABLE account_limits;
