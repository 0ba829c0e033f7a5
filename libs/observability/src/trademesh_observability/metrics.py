"""The one declaration of every trademesh metric: name, kind, unit, help and labels.

Dashboards and alert rules may only query names declared here (a test checks it). Metrics live
on one dedicated registry, REGISTRY, which /metrics serves and FastStream's Prometheus middleware
writes to, so a process exports exactly the declared set (plus the process/platform collectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

Kind = Literal["counter", "gauge", "histogram", "external"]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exported; counters end in _total
    kind: Kind
    unit: str
    help: str
    labels: tuple[str, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("trademesh_http_requests_total", "counter", "requests", "HTTP requests served.", ("service", "method", "route", "status")),
    MetricSpec("trademesh_http_request_duration_seconds", "histogram", "seconds", "HTTP request latency.", ("service", "method", "route")),
    MetricSpec("trademesh_ready", "gauge", "boolean", "1 when a readiness check passes, 0 when it fails.", ("service", "check")),
    MetricSpec("trademesh_bus_published_total", "counter", "messages", "Messages published to Kafka.", ("service", "topic")),
    MetricSpec("trademesh_bus_publish_errors_total", "counter", "messages", "Publishes that failed after retries.", ("service", "topic")),
    MetricSpec("trademesh_bus_publish_retries_total", "counter", "retries", "Publish attempts repeated after a retriable broker error.", ("service", "topic")),
    MetricSpec("trademesh_bus_dlq_total", "counter", "messages", "Messages sent to a dead-letter topic.", ("service", "topic", "reason")),
    MetricSpec("trademesh_bus_handler_retries_total", "counter", "retries", "In-place retries of handlers after transient errors.", ("service", "topic")),
    MetricSpec("trademesh_bus_redeliveries_skipped_total", "counter", "messages", "Redelivered events the inbox skipped (already applied).", ("service", "topic")),
    MetricSpec("trademesh_bus_consumer_lag", "gauge", "messages", "Messages on a partition this process consumes that it has not read yet (end offset minus the consumer's position), sampled every few seconds. On the embedded Tansu broker the end offset can stop short of the last batch, so the lag may read a few messages low.", ("service", "topic", "partition")),
    MetricSpec("trademesh_outbox_pending", "gauge", "rows", "Outbox rows not yet published.", ("service",)),
    MetricSpec("trademesh_outbox_relayed_total", "counter", "messages", "Outbox rows published to Kafka.", ("service", "topic")),
    MetricSpec("trademesh_outbox_relay_lag_seconds", "histogram", "seconds", "Time from outbox write to broker acknowledgement.", ("service",)),
    MetricSpec("trademesh_db_migrations_applied_total", "counter", "migrations", "SQL migrations applied at start.", ("service",)),
    # market-data
    MetricSpec("trademesh_md_ticks_in_total", "counter", "ticks", "Ticks a feed read from its source.", ("service", "feed")),
    MetricSpec("trademesh_md_ticks_out_total", "counter", "ticks", "Ticks published to md.ticks.v1.", ("service", "feed")),
    MetricSpec("trademesh_md_bars_out_total", "counter", "bars", "Bars published to md.bars.v1 (final and in-progress).", ("service", "feed", "timeframe", "final")),
    MetricSpec("trademesh_md_rejected_total", "counter", "records", "Source records refused (never published), by reason.", ("service", "feed", "reason")),
    MetricSpec("trademesh_md_late_ticks_total", "counter", "ticks", "Ticks whose bar interval was already final (published, not aggregated).", ("service", "feed")),
    MetricSpec("trademesh_md_publish_seconds", "histogram", "seconds", "Time to publish one batch and get every acknowledgement.", ("service", "topic")),
    MetricSpec("trademesh_md_store_write_seconds", "histogram", "seconds", "Time to write one batch to the tick store.", ("service", "table")),
    MetricSpec("trademesh_md_store_batch_rows", "histogram", "rows", "Rows per tick store write.", ("service", "table")),
    MetricSpec("trademesh_md_store_pending", "gauge", "rows", "Rows buffered for the tick store.", ("service", "table")),
    MetricSpec("trademesh_md_store_dropped_total", "counter", "rows", "Rows dropped because the store buffer was full.", ("service", "table")),
    MetricSpec("trademesh_md_store_errors_total", "counter", "batches", "Tick store writes that failed (the rows stay buffered).", ("service", "table")),
    MetricSpec("trademesh_md_feed_connected", "gauge", "boolean", "1 while a feed is connected to its source.", ("service", "feed")),
    MetricSpec("trademesh_md_feed_reconnects_total", "counter", "reconnects", "Times a feed reconnected to its source.", ("service", "feed")),
    # execution
    MetricSpec("trademesh_execution_fills_total", "counter", "fills", "Fills booked into positions, by venue.", ("service", "venue")),
    MetricSpec("trademesh_execution_discrepancies_total", "counter", "discrepancies", "Differences between a venue and the service's orders (never resolved silently), by kind.", ("service", "kind")),
    MetricSpec("trademesh_execution_balance_refreshes_total", "counter", "reads", "Reads of an exchange account's balances from its venue, told to risk as its buying power, by outcome (ok, unavailable, timeout, rejected, malformed); a failed read leaves risk's last figures.", ("service", "venue", "outcome")),
    # Totals over every account of a venue, read from execution's books every few seconds (every
    # replica reads the same books: aggregate across instances with max, not sum). Per venue, not
    # per account: accounts are opened freely by users, so an account label would grow without
    # bound; venues are the few the platform is configured for. Money is in the accounts' cash
    # currency (the books keep one unit of account).
    MetricSpec("trademesh_execution_equity", "gauge", "money", "Cash plus positions at their last prices, summed over the venue's accounts (an account holding a position without a price yet is left out).", ("service", "venue")),
    MetricSpec("trademesh_execution_realised_pnl", "gauge", "money", "Realised PnL net of fees since each account opened, summed over the venue's accounts.", ("service", "venue")),
    MetricSpec("trademesh_execution_unrealised_pnl", "gauge", "money", "Open positions' PnL at their last prices, summed over the venue's accounts (positions without a price are left out).", ("service", "venue")),
    # strategy
    MetricSpec("trademesh_strategy_bars_total", "counter", "bars", "Final bars handed to running bots (one per bot and bar).", ("service", "strategy")),
    MetricSpec("trademesh_strategy_intents_total", "counter", "intents", "Order intents bots emitted (through the outbox).", ("service", "strategy", "kind")),
    MetricSpec("trademesh_strategy_bot_errors_total", "counter", "errors", "Bots put in ERROR because their strategy raised.", ("service", "strategy")),
    MetricSpec("trademesh_strategy_bot_warmups_total", "counter", "warm-ups", "Bot sessions built from the history API (start, restart, resume).", ("service", "reason")),
    MetricSpec("trademesh_strategy_backtests_total", "counter", "backtests", "Backtests finished, by outcome.", ("service", "status")),
    MetricSpec("trademesh_strategy_backtest_seconds", "histogram", "seconds", "Time a backtest ran in its worker process.", ("service",)),
    # risk
    MetricSpec("trademesh_risk_decisions_total", "counter", "intents", "Order intents decided, by decision and reason code.", ("service", "decision", "reason")),
    MetricSpec("trademesh_risk_kill_switch_engaged", "gauge", "boolean", "1 while the platform-wide kill switch is engaged (as last seen by this process).", ("service",)),
    MetricSpec("trademesh_risk_reducing_total", "counter", "accounts", "Accounts switched to REDUCING by their daily loss limit.", ("service",)),
    # notify
    MetricSpec("trademesh_notify_unowned_total", "counter", "events", "Events naming only an account: held because the account's owner was not learnt yet, resolved (sent to the owner learnt later), an AccountChanged naming another owner than the one kept (conflict, ignored), or dropped (held past the retention, its owner never learnt).", ("service", "outcome")),
    # gateway
    MetricSpec("trademesh_gateway_rate_limited_total", "counter", "requests", "Requests refused with 429 by a rate limit, by scope (ip, user, streams).", ("service", "scope")),
    MetricSpec("trademesh_gateway_upstream_errors_total", "counter", "requests", "Upstream calls that failed (timeout or unavailable), by upstream service.", ("service", "upstream", "kind")),
    MetricSpec("trademesh_gateway_streams_open", "gauge", "streams", "Open server-sent event streams.", ("service",)),
    MetricSpec("trademesh_gateway_stream_events_dropped_total", "counter", "events", "Events a slow event stream lost (its queue was full: the oldest went).", ("service",)),
    # notify: by channel kind and event kind only (never a user's or a channel's id: both grow
    # without bound)
    MetricSpec("trademesh_notify_deliveries_total", "counter", "deliveries", "Delivery outcomes: sent (the receiver answered 2xx), failed (an attempt failed; another is scheduled), dead (the last attempt failed), deferred (over the channel's rate limit: put off, not an attempt).", ("service", "channel_kind", "event_kind", "outcome")),
    MetricSpec("trademesh_notify_delivery_retries_total", "counter", "attempts", "Attempts of a delivery after its first one.", ("service", "channel_kind", "event_kind")),
    MetricSpec("trademesh_notify_delivery_latency_seconds", "histogram", "seconds", "Time from an event's own time (its ce_time) to its delivery sent.", ("service", "channel_kind", "event_kind")),
    # Exported by FastStream's KafkaPrometheusMiddleware on the same registry (app_name = service).
    MetricSpec("faststream_received_messages_total", "external", "messages", "Messages received (FastStream).", ("app_name", "broker", "handler")),
    MetricSpec("faststream_received_messages_size_bytes", "external", "bytes", "Received message sizes (FastStream).", ("app_name", "broker", "handler")),
    MetricSpec("faststream_received_processed_messages_duration_seconds", "external", "seconds", "Handler duration (FastStream).", ("app_name", "broker", "handler")),
    MetricSpec("faststream_received_messages_in_process", "external", "messages", "Messages being handled (FastStream).", ("app_name", "broker", "handler")),
    MetricSpec("faststream_received_processed_messages_total", "external", "messages", "Messages handled, by status (FastStream).", ("app_name", "broker", "handler", "status")),
    MetricSpec("faststream_received_processed_messages_exceptions_total", "external", "exceptions", "Handler exceptions (FastStream).", ("app_name", "broker", "handler", "exception_type")),
    MetricSpec("faststream_published_messages_total", "external", "messages", "Messages published, by status (FastStream).", ("app_name", "broker", "destination", "status")),
    MetricSpec("faststream_published_messages_duration_seconds", "external", "seconds", "Publish duration (FastStream).", ("app_name", "broker", "destination")),
    MetricSpec("faststream_published_messages_exceptions_total", "external", "exceptions", "Publish exceptions (FastStream).", ("app_name", "broker", "destination", "exception_type")),
)  # fmt: skip

_SPECS = {spec.name: spec for spec in METRICS}


def _base(name: str) -> str:
    return name.removesuffix("_total")


def _counter(name: str) -> Counter:
    spec = _SPECS[name]
    return Counter(_base(name), spec.help, spec.labels, registry=REGISTRY)


def _gauge(name: str) -> Gauge:
    spec = _SPECS[name]
    return Gauge(name, spec.help, spec.labels, registry=REGISTRY)


def _histogram(name: str, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> Histogram:
    spec = _SPECS[name]
    return Histogram(name, spec.help, spec.labels, registry=REGISTRY, buckets=buckets)


HTTP_REQUESTS = _counter("trademesh_http_requests_total")
HTTP_DURATION = _histogram("trademesh_http_request_duration_seconds")
READY = _gauge("trademesh_ready")
BUS_PUBLISHED = _counter("trademesh_bus_published_total")
BUS_PUBLISH_ERRORS = _counter("trademesh_bus_publish_errors_total")
BUS_PUBLISH_RETRIES = _counter("trademesh_bus_publish_retries_total")
BUS_DLQ = _counter("trademesh_bus_dlq_total")
BUS_HANDLER_RETRIES = _counter("trademesh_bus_handler_retries_total")
BUS_REDELIVERIES_SKIPPED = _counter("trademesh_bus_redeliveries_skipped_total")
BUS_CONSUMER_LAG = _gauge("trademesh_bus_consumer_lag")
OUTBOX_PENDING = _gauge("trademesh_outbox_pending")
OUTBOX_RELAYED = _counter("trademesh_outbox_relayed_total")
OUTBOX_RELAY_LAG = _histogram("trademesh_outbox_relay_lag_seconds")
DB_MIGRATIONS_APPLIED = _counter("trademesh_db_migrations_applied_total")
MD_TICKS_IN = _counter("trademesh_md_ticks_in_total")
MD_TICKS_OUT = _counter("trademesh_md_ticks_out_total")
MD_BARS_OUT = _counter("trademesh_md_bars_out_total")
MD_REJECTED = _counter("trademesh_md_rejected_total")
MD_LATE_TICKS = _counter("trademesh_md_late_ticks_total")
MD_PUBLISH_SECONDS = _histogram("trademesh_md_publish_seconds")
MD_STORE_WRITE_SECONDS = _histogram("trademesh_md_store_write_seconds")
MD_STORE_BATCH_ROWS = _histogram(
    "trademesh_md_store_batch_rows", (1, 10, 100, 500, 1000, 5000, 10000, 50000, 100000)
)
MD_STORE_PENDING = _gauge("trademesh_md_store_pending")
MD_STORE_DROPPED = _counter("trademesh_md_store_dropped_total")
MD_STORE_ERRORS = _counter("trademesh_md_store_errors_total")
MD_FEED_CONNECTED = _gauge("trademesh_md_feed_connected")
MD_FEED_RECONNECTS = _counter("trademesh_md_feed_reconnects_total")
EXECUTION_FILLS = _counter("trademesh_execution_fills_total")
EXECUTION_DISCREPANCIES = _counter("trademesh_execution_discrepancies_total")
EXECUTION_BALANCE_REFRESHES = _counter("trademesh_execution_balance_refreshes_total")
EXECUTION_EQUITY = _gauge("trademesh_execution_equity")
EXECUTION_REALISED_PNL = _gauge("trademesh_execution_realised_pnl")
EXECUTION_UNREALISED_PNL = _gauge("trademesh_execution_unrealised_pnl")
RISK_DECISIONS = _counter("trademesh_risk_decisions_total")
RISK_KILL_SWITCH = _gauge("trademesh_risk_kill_switch_engaged")
RISK_REDUCING = _counter("trademesh_risk_reducing_total")
STRATEGY_BARS = _counter("trademesh_strategy_bars_total")
STRATEGY_INTENTS = _counter("trademesh_strategy_intents_total")
STRATEGY_BOT_ERRORS = _counter("trademesh_strategy_bot_errors_total")
STRATEGY_WARMUPS = _counter("trademesh_strategy_bot_warmups_total")
STRATEGY_BACKTESTS = _counter("trademesh_strategy_backtests_total")
NOTIFY_UNOWNED = _counter("trademesh_notify_unowned_total")
GATEWAY_RATE_LIMITED = _counter("trademesh_gateway_rate_limited_total")
GATEWAY_UPSTREAM_ERRORS = _counter("trademesh_gateway_upstream_errors_total")
GATEWAY_STREAMS_OPEN = _gauge("trademesh_gateway_streams_open")
GATEWAY_STREAM_EVENTS_DROPPED = _counter("trademesh_gateway_stream_events_dropped_total")
NOTIFY_DELIVERIES = _counter("trademesh_notify_deliveries_total")
NOTIFY_DELIVERY_RETRIES = _counter("trademesh_notify_delivery_retries_total")
NOTIFY_DELIVERY_LATENCY = _histogram(
    "trademesh_notify_delivery_latency_seconds",
    (*_LATENCY_BUCKETS, 30.0, 60.0, 300.0, 1800.0, 3600.0),  # retries back off to minutes
)
STRATEGY_BACKTEST_SECONDS = _histogram(
    "trademesh_strategy_backtest_seconds",
    (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def declared_metric_names() -> set[str]:
    """Every metric name a process may export (as it appears in /metrics, without the
    `_bucket`/`_sum`/`_count`/`_created` series suffixes)."""
    return set(_SPECS)
