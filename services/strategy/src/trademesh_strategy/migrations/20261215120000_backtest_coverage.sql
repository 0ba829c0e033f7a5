-- migrate:up
-- The range a backtest actually covered: the open times of the first and the last bar it ran
-- over, beside the range it asked for (market-data may hold less). NULL until it has succeeded,
-- and for backtests that succeeded before this was recorded.
ALTER TABLE backtests ADD COLUMN first_bar_at timestamptz, ADD COLUMN last_bar_at timestamptz;

-- migrate:down
ALTER TABLE backtests DROP COLUMN first_bar_at, DROP COLUMN last_bar_at;
