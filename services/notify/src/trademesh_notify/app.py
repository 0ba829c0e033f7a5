"""The notify app factory: wires settings, database, bus, handlers and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from trademesh_keystore import keystore_from
from trademesh_service import service_app, service_lifespan, wire

from trademesh_notify.api import api_router
from trademesh_notify.api.deps import Runtime
from trademesh_notify.config import Settings
from trademesh_notify.engine import ChannelKind, RetryPolicy
from trademesh_notify.handlers import register_handlers
from trademesh_notify.links import ApprovalLinks
from trademesh_notify.ratelimit import ChannelLimits
from trademesh_notify.store import ChannelStore, DeliveryStore
from trademesh_notify.transports.smtp import EmailTransport
from trademesh_notify.transports.telegram import TelegramTransport
from trademesh_notify.transports.webhook import WebhookTransport
from trademesh_notify.usecases.channels import Channels
from trademesh_notify.usecases.deliveries import Deliveries
from trademesh_notify.usecases.retention import DeliveryRetention
from trademesh_notify.wake import CommitListener
from trademesh_notify.webhook.sender import WebhookSender

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def approval_links(settings: Settings) -> ApprovalLinks | None:
    """The signed approve/reject links of pending approvals, when both the gateway's public
    address and the key strategy checks them with are set; else notifications carry none."""
    if settings.public_url is None or settings.approval_link_key is None:
        return None
    return ApprovalLinks(settings.public_url, settings.approval_link_key)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> FastAPI:
    """The service: consumers on its input topics, the delivery loop, its API under /api/v1,
    and /health, /ready (Postgres and Kafka checked for real), /metrics."""
    wiring = wire(settings, __name__)
    log, bus, db = wiring.log, wiring.bus, wiring.db
    database = wiring.database
    keystore = keystore_from(settings)
    allowed = settings.webhook_allowed_address_kinds  # every kind's destinations
    sender = WebhookSender(allowed, settings.webhook_timeout_s)
    telegram = TelegramTransport(settings.telegram_api_base, allowed, settings.webhook_timeout_s)
    email = EmailTransport(allowed, settings.smtp_timeout_s, clock)
    channels = Channels(ChannelStore(database), keystore, sender, clock, email)
    delivery_store = DeliveryStore(database)
    deliveries = Deliveries(
        delivery_store,
        keystore,
        {
            ChannelKind.WEBHOOK: WebhookTransport(sender, clock),
            ChannelKind.TELEGRAM: telegram,
            ChannelKind.EMAIL: email,
        },
        RetryPolicy(
            settings.delivery_max_attempts,
            settings.delivery_backoff_base_s,
            settings.delivery_backoff_cap_s,
        ),
        clock,
        poll_interval_s=settings.delivery_poll_interval_s,
        batch=settings.delivery_batch,
        # Longer than a send can take: a leased delivery is another replica's until then.
        lease=timedelta(seconds=max(settings.webhook_timeout_s, settings.smtp_timeout_s) * 3),
        service=settings.service_name,
        links=approval_links(settings),
        limits=ChannelLimits(
            settings.delivery_rate_limit_storage_uri,
            settings.delivery_rate_limits,
            settings.telegram_bot_rate_limit,
        ),
        listener=CommitListener(
            database.url,
            delivery_store.wake_channel,
            application_name=f"trademesh-{database.schema}",  # as the pool's connections
        ),
    )
    retention = DeliveryRetention.from_settings(database, settings)
    register_handlers(bus, deliveries, settings, db)
    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        tasks=[deliveries.run, retention.run],
        close=[sender.aclose, telegram.aclose],
    )
    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings, channels=channels, deliveries=deliveries, bus=bus, db=db
        ),
        api=api_router(),
    )
