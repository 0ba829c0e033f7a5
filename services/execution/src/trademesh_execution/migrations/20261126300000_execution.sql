-- migrate:up
-- Trading accounts: where an account's orders go. `paper` accounts trade on the paper venue
-- with simulated cash; exchange accounts (ccxt, with encrypted keys) come with their venue.
CREATE TABLE accounts (
    account_id uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    name       text        NOT NULL,
    venue      text        NOT NULL,
    cash       numeric     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_by_user ON accounts (user_id, created_at);

-- Orders: a row is PENDING before anything is sent; every later state is a transition of the
-- state machine in engine.py, recorded in order_history with the event it emitted.
CREATE TABLE orders (
    client_order_id text        PRIMARY KEY,
    account_id      uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    instrument_id   text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type      text        NOT NULL,
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    limit_price     numeric,
    stop_price      numeric,
    time_in_force   text        NOT NULL,
    venue           text        NOT NULL,
    status          text        NOT NULL,
    filled          numeric     NOT NULL DEFAULT 0,
    avg_price       numeric,
    fees            numeric     NOT NULL DEFAULT 0,
    fills           int         NOT NULL DEFAULT 0,
    triggered       boolean     NOT NULL DEFAULT false,
    venue_order_id  text,
    -- Paper orders: the market time they were accepted at, and from which bars may fill them.
    accepted_at     timestamptz,
    active_from     timestamptz,
    reason          text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_account ON orders (account_id, created_at);
CREATE INDEX orders_open_paper ON orders (instrument_id)
    WHERE venue = 'paper' AND status IN ('ACCEPTED', 'PARTIALLY_FILLED');

CREATE TABLE order_history (
    client_order_id text        NOT NULL REFERENCES orders (client_order_id) ON DELETE CASCADE,
    seq             bigserial,
    status          text        NOT NULL,
    reason          text,
    at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_order_id, seq)
);

CREATE TABLE fills (
    trade_id        text        PRIMARY KEY,
    client_order_id text        NOT NULL REFERENCES orders (client_order_id) ON DELETE CASCADE,
    account_id      uuid        NOT NULL,
    instrument_id   text        NOT NULL,
    side            text        NOT NULL,
    quantity        numeric     NOT NULL,
    price           numeric     NOT NULL,
    fee             numeric     NOT NULL,
    fee_currency    text        NOT NULL,
    liquidity       text        NOT NULL,
    ts              timestamptz NOT NULL
);
CREATE INDEX fills_by_account ON fills (account_id, ts);

-- Positions per account and instrument: average cost, realised PnL and fees.
CREATE TABLE positions (
    account_id    uuid    NOT NULL,
    instrument_id text    NOT NULL,
    position      numeric NOT NULL DEFAULT 0,
    avg_price     numeric NOT NULL DEFAULT 0,
    realised      numeric NOT NULL DEFAULT 0,
    fees          numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, instrument_id)
);

-- The market's own clock per instrument (the latest close time of its final bars) and its
-- last price (that bar's close).
CREATE TABLE market (
    instrument_id text        PRIMARY KEY,
    clock         timestamptz NOT NULL,
    last_price    numeric     NOT NULL
);

-- migrate:down
DROP TABLE market;
DROP TABLE positions;
DROP TABLE fills;
DROP TABLE order_history;
DROP TABLE orders;
DROP TABLE accounts;
