"""Backtests as a service: requests, their store, the function a worker process runs, the workers.

A submitted backtest is a row of `backtests` (QUEUED). The service's BacktestWorker claims rows
(`FOR UPDATE SKIP LOCKED`, so replicas share the queue), fetches the bars once from market-data's
history API and runs trademesh_trading's Backtester in a process of its pool (a backtest is CPU
work: in the service's event loop it would stall the bots). A grid search is N rows with one
grid_id, inserted together; the worker runs up to `backtest_workers` rows at a time, so a grid's
combinations run in parallel across the processes.

Who owns a running row: each claim increments `attempts`, and every later write (heartbeat,
result, retry) names the attempt it belongs to; a worker whose row was taken over (its heartbeat
went stale) writes nothing. A row RUNNING with a heartbeat older than STALE_AFTER_S has lost its
worker (crash, kill, or an interrupted shutdown) and is claimed again. After MAX_ATTEMPTS claims
a backtest is FAILED rather than tried forever.

The modules: `requests` (what is submitted), `grid` (a grid's combinations and their ranking,
pure), `results` (the worker process's function and its result as stored), `jobs` (the
states of a queued row and the rules of its claims), `store` (the tables), `bars` (the bars
cache) and `worker` (the worker tasks and their process pool).
"""
