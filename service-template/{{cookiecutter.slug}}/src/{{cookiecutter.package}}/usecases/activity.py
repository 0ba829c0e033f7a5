{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The sample domain's use cases: recording what the service consumed and published.

A use case is what a handler or a route asks of the service: it runs the engine's pure logic on
what the store holds, in the transaction of the delivery (inbox) or one of its own, with the
events it causes in the outbox. Replace it with the service's own use cases, one module each.
"""

from __future__ import annotations

{% if cookiecutter.owns_schema -%}
import asyncpg
{% endif -%}
{% if produces -%}
from trademesh_bus import Bus
{% endif -%}
{% if cookiecutter.owns_schema -%}
from trademesh_db import Database
{% endif -%}
from trademesh_events.base import Event
from trademesh_events.envelope import Envelope
from trademesh_events.topics import TopicSpec

from {{ cookiecutter.package }}.engine import Activity, observe
from {{ cookiecutter.package }}.store import ActivityStore


class ActivityLog:
    """The activity per key: events consumed ("in") and published ("out")."""

    def __init__(
        self,
        store: ActivityStore,
{%- if produces %}
        bus: Bus,
{%- endif %}
{%- if cookiecutter.owns_schema %}
        db: Database,
{%- endif %}
    ) -> None:
        self.store = store
{%- if produces %}
        self.bus = bus
{%- endif %}
{%- if cookiecutter.owns_schema %}
        self.db = db
{%- endif %}

    async def consumed(
        self,
        topic: TopicSpec[Event],
        event: Event,
        envelope: Envelope,
{%- if cookiecutter.owns_schema %}
        conn: asyncpg.Connection | None,
{%- endif %}
    ) -> Activity:
{%- if cookiecutter.owns_schema %}
        """Count a consumed event, in the delivery's transaction (with its inbox entry: a
        redelivered event changes nothing)."""
        return await self.store.apply(observe(topic, event, envelope, "in"), conn)
{%- else %}
        """Count a consumed event (in memory: delivery is at least once)."""
        return await self.store.apply(observe(topic, event, envelope, "in"))
{%- endif %}
{%- if produces %}

    async def publish(self, topic: TopicSpec[Event], event: Event) -> Envelope:
{%- if cookiecutter.owns_schema %}
        """Publish `event` on `topic` and count it: the count and the event commit together
        (the event goes to the outbox, which the relay publishes)."""
        async with self.db.transaction() as conn:
            envelope = await self.bus.outbox.add(conn, event, topic=topic)
            await self.store.apply(observe(topic, event, envelope, "out"), conn)
{%- else %}
        """Publish `event` on `topic` and count it."""
        envelope = await self.bus.publish(event, topic=topic)
        await self.store.apply(observe(topic, event, envelope, "out"))
{%- endif %}
        return envelope
{%- endif %}
