-- migrate:up
-- The final bars the paper venue has seen, per instrument (the newest PAPER_BARS_KEPT of each
-- timeframe). An approval that reaches execution after later bars (the order pipeline behind
-- the market data: a replay faster than the bots, a restart) is tried against the bars after
-- the one its bot decided on, as if it had come in time: in a replay as live, an order decided
-- on bar t fills from bar t+1, however late its approval.
CREATE TABLE paper_bars (
    instrument_id text        NOT NULL,
    timeframe     text        NOT NULL,
    open_time     timestamptz NOT NULL,
    close_time    timestamptz NOT NULL,
    bar           json        NOT NULL,
    PRIMARY KEY (instrument_id, timeframe, open_time)
);
CREATE INDEX paper_bars_by_close ON paper_bars (instrument_id, close_time);

-- migrate:down
DROP TABLE paper_bars;
