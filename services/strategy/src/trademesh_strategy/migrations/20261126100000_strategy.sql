-- migrate:up
-- Bots: a user's strategy with its parameters on one instrument and timeframe, trading through
-- one account (paper or an exchange account) with a sizing rule. Unqualified names land in the
-- service's schema.
CREATE TABLE bots (
    bot_id        uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL,
    account_id    uuid        NOT NULL,
    name          text        NOT NULL,
    strategy      text        NOT NULL,
    params        jsonb       NOT NULL,
    instrument_id text        NOT NULL,
    timeframe     text        NOT NULL,
    venue         text        NOT NULL,
    sizing        jsonb       NOT NULL,
    capital       numeric     NOT NULL CHECK (capital > 0),
    state         text        NOT NULL CHECK (state IN ('STARTING', 'RUNNING', 'PAUSED', 'STOPPED', 'ERROR')),
    error         text,
    -- The strategy's history: the first bar it ever saw (warm-up included) and the last one.
    -- A restarted service replays [warm_from, last_bar_time] from market-data's history API
    -- through on_bar (orders suppressed), so the strategy's state is what it was.
    warm_from     timestamptz,
    last_bar_time timestamptz,
    bars_seen     bigint      NOT NULL DEFAULT 0,
    position      numeric     NOT NULL DEFAULT 0,
    cash          numeric     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bots_by_user ON bots (user_id, created_at, bot_id);
CREATE INDEX bots_running ON bots (instrument_id, timeframe) WHERE state = 'RUNNING';

-- One row per start of a bot: when it ran, how it ended, what it did.
CREATE TABLE bot_runs (
    run_id      uuid        PRIMARY KEY,
    bot_id      uuid        NOT NULL REFERENCES bots (bot_id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    end_state   text,
    reason      text,
    bars        bigint      NOT NULL DEFAULT 0,
    orders      bigint      NOT NULL DEFAULT 0,
    fills       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX bot_runs_by_bot ON bot_runs (bot_id, started_at);

-- Every order a bot asked for. The client order id is deterministic (bot, bar time, leg), so a
-- bar handled twice cannot ask twice: the primary key refuses the second.
CREATE TABLE bot_orders (
    client_order_id text        PRIMARY KEY,
    bot_id          uuid        NOT NULL REFERENCES bots (bot_id) ON DELETE CASCADE,
    run_id          uuid        NOT NULL REFERENCES bot_runs (run_id) ON DELETE CASCADE,
    bar_time        timestamptz NOT NULL,
    leg             text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type      text        NOT NULL,
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    limit_price     numeric,
    stop_price      numeric,
    status          text        NOT NULL DEFAULT 'REQUESTED',
    filled          numeric     NOT NULL DEFAULT 0,
    open            boolean     NOT NULL DEFAULT true,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_orders_by_bot ON bot_orders (bot_id, created_at);
CREATE INDEX bot_orders_open ON bot_orders (bot_id) WHERE open;

-- Fills applied to a bot's position and cash, once each.
CREATE TABLE bot_fills (
    client_order_id text        NOT NULL REFERENCES bot_orders (client_order_id) ON DELETE CASCADE,
    trade_id        text        NOT NULL,
    side            text        NOT NULL,
    quantity        numeric     NOT NULL,
    price           numeric     NOT NULL,
    fee             numeric     NOT NULL,
    ts              timestamptz NOT NULL,
    PRIMARY KEY (client_order_id, trade_id)
);

-- A parameter grid over one backtest: its backtests are rows of `backtests` with its grid_id.
CREATE TABLE backtest_grids (
    grid_id    uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    request    jsonb       NOT NULL,
    rank_by    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Backtests: submitted, run by the service's worker processes, results kept.
CREATE TABLE backtests (
    backtest_id  uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL,
    grid_id      uuid        REFERENCES backtest_grids (grid_id) ON DELETE CASCADE,
    request      jsonb       NOT NULL,
    status       text        NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error        text,
    stats        jsonb,
    trades       jsonb,
    equity       jsonb,
    bars         bigint,
    attempts     int         NOT NULL DEFAULT 0,
    heartbeat_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX backtests_by_user ON backtests (user_id, created_at, backtest_id);
CREATE INDEX backtests_by_grid ON backtests (grid_id) WHERE grid_id IS NOT NULL;
CREATE INDEX backtests_queued ON backtests (created_at) WHERE status IN ('QUEUED', 'RUNNING');

-- migrate:down
DROP TABLE backtests;
DROP TABLE backtest_grids;
DROP TABLE bot_fills;
DROP TABLE bot_orders;
DROP TABLE bot_runs;
DROP TABLE bots;
