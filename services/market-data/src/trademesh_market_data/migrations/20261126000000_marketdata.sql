-- migrate:up
-- Instruments and their feeds (configured through the API), ticks and bars (the embedded tick
-- store; compose and Kubernetes keep ticks in QuestDB). Unqualified names land in `marketdata`.
CREATE TABLE instruments (
    instrument_id text        PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feeds (
    feed_id       uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('replay', 'synthetic', 'ccxt')),
    instrument_id text        NOT NULL REFERENCES instruments,
    config        jsonb       NOT NULL,
    enabled       boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Append-only, written with COPY in batches. BRIN on time keeps the time index tiny and cheap to
-- maintain; the (instrument, time) b-tree serves history queries of one instrument.
CREATE TABLE ticks (
    instrument_id text        NOT NULL,
    ts            timestamptz NOT NULL,
    price         numeric     NOT NULL CHECK (price > 0),
    size          numeric     NOT NULL CHECK (size > 0),
    side          text        CHECK (side IN ('buy', 'sell')),
    trade_id      text
);
CREATE INDEX ticks_ts_brin ON ticks USING brin (ts);
CREATE INDEX ticks_instrument_ts ON ticks (instrument_id, ts);

-- Final bars (built from ticks, replayed from files, or fetched from exchanges).
CREATE TABLE bars (
    instrument_id text        NOT NULL,
    timeframe     text        NOT NULL,
    open_time     timestamptz NOT NULL,
    close_time    timestamptz NOT NULL,
    open          numeric     NOT NULL,
    high          numeric     NOT NULL,
    low           numeric     NOT NULL,
    close         numeric     NOT NULL,
    volume        numeric     NOT NULL,
    trades        integer     NOT NULL,
    PRIMARY KEY (instrument_id, timeframe, open_time)
);

-- migrate:down
DROP TABLE bars;
DROP TABLE ticks;
DROP TABLE feeds;
DROP TABLE instruments;
