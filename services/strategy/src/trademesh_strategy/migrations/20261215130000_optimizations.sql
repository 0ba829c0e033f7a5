-- migrate:up
-- Optimisations: an Optuna search of a strategy's parameters, validated walk-forward. The row is
-- the job, claimed as a backtest is (attempts, heartbeat).
CREATE TABLE optimizations (
    optimization_id uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    request         jsonb       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error           text,
    result          jsonb,
    trials_done     int         NOT NULL DEFAULT 0,
    trials_total    int         NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    heartbeat_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX optimizations_by_user ON optimizations (user_id, created_at, optimization_id);
CREATE INDEX optimizations_queued ON optimizations (created_at) WHERE status IN ('QUEUED', 'RUNNING');

-- Its studies, as Optuna's journal storage writes them: one operation per row, in order (seq
-- from 0), replayed by a later claim to resume the studies. `log` is Optuna's JSON as text,
-- since it may hold NaN and Infinity, which jsonb refuses
-- (docs/decisions/0121-optimisation-walk-forward.md).
CREATE TABLE optimization_journal (
    optimization_id uuid NOT NULL REFERENCES optimizations (optimization_id) ON DELETE CASCADE,
    seq             int  NOT NULL,
    log             text NOT NULL,
    PRIMARY KEY (optimization_id, seq)
);

-- migrate:down
DROP TABLE optimization_journal;
DROP TABLE optimizations;
