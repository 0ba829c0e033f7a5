"""The risk service on the real broker and the real Postgres: events in and out, /ready, /metrics, the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events.topics import ORDERS_APPROVED, ORDERS_DENIED, ORDERS_INTENTS, get_topic
from trademesh_testing.contract import ServiceContract
from trademesh_testing.samples import decoded, read_all, sample_for_topic, unique_key
from trademesh_testing.waiting import eventually

from trademesh_risk.app import create_app
from trademesh_risk.config import Settings

pytestmark = pytest.mark.integration


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""

    @pytest.fixture
    def private_app(self, private_infra: Any) -> FastAPI:
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))


async def test_a_malformed_intent_goes_to_the_dlq_and_consumption_goes_on(
    client: httpx.AsyncClient, producer: Bus, settings: Settings
) -> None:
    spec = get_topic(ORDERS_INTENTS)
    key = unique_key(spec.name)
    good = sample_for_topic(spec.name, key, client_order_id=f"t-{uuid4().hex[:20]}")
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid4()),
        "ce_source": "test",
        "ce_type": good.type,
        "ce_time": datetime.now(UTC).isoformat(),
    }
    malformed = b'{"type": "' + good.type.encode() + b'"}'  # the right type, no fields
    await producer.publish_raw(spec.name, malformed, key.encode(), headers)
    await producer.publish(good, topic=spec)

    async def decided() -> list[Any]:
        records = await read_all(settings.kafka_bootstrap, ORDERS_APPROVED, expect=1, timeout=2)
        approvals = decoded(ORDERS_APPROVED, records)
        return [a for a in approvals if getattr(a, "order", None) == good]

    async def denied() -> list[Any]:
        records = await read_all(settings.kafka_bootstrap, ORDERS_DENIED, expect=1, timeout=2)
        return [
            d for d in decoded(ORDERS_DENIED, records) if d.client_order_id == good.client_order_id
        ]

    # The sample, behind the poison, is decided: a limit order (at 12,345,678.12) of an account
    # without limits of its own, so the default limits' price collar needs a last price, which
    # nobody published: denied, with its reason. (Without a collar it would be approved.)
    [denial] = await eventually(denied)
    assert denial.reason.value == "NO_MARKET_PRICE"
    assert await decided() == []
    dead = await read_all(settings.kafka_bootstrap, spec.dlq, expect=1)
    mine = [r for r in dead if dict(r.headers).get("ce_id") == headers["ce_id"].encode()]
    assert len(mine) == 1
    assert dict(mine[0].headers)["dlq_reason"] == b"schema_validation"
