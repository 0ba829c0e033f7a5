-- migrate:up
-- Each account's equity (cash plus positions at their last prices), sampled for charts.
CREATE TABLE equity_history (
    account_id uuid        NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    ts         timestamptz NOT NULL,
    cash       numeric     NOT NULL,
    equity     numeric     NOT NULL,
    PRIMARY KEY (account_id, ts)
);

-- migrate:down
DROP TABLE equity_history;
