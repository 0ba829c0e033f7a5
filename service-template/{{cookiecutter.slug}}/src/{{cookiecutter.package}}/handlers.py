{%- set consumes = cookiecutter.consumes.split(',')|map('trim')|select|list -%}
{#- The topics' constants, in ruff's (isort's) order: case-insensitive, whatever the option's order. -#}
{%- set constants = [] -%}
{%- for t in consumes -%}
{%- set _ = constants.append(t.rsplit('.', 1)[0]|upper|replace('.', '_') ~ '_TOPIC') -%}
{%- endfor -%}
{%- set constants = constants|sort -%}
"""The {{ cookiecutter.slug }} service's event subscribers: thin, they hand each event to a use case."""

from __future__ import annotations

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.base import Event
from trademesh_events.topics import (
{%- for constant in constants %}
    {{ constant }},
{%- endfor %}
    get_topic,
)
from trademesh_service import service_manifest

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.usecases.activity import ActivityLog


def register_handlers(
    bus: Bus, activity: ActivityLog, settings: Settings, db: Database | None
) -> None:
    """Subscribe to every consumed topic, one consumer group per topic.

    With a database the handler runs in one transaction with the inbox entry (a redelivered
    event changes nothing); without one, delivery is at least once. A message that fails
    validation goes to `<topic>.dlq` (the bus does that) and the consumer goes on.
    """

    # The sample counts every event alike, so its handler takes any Event. A handler of the
    # service's own logic subscribes to a typed topic (ORDERS_EVENTS_TOPIC carries
    # OrderLifecycleEvent), takes exactly that union and tells its types apart with
    # `match event:` ending in `case _: assert_never(event)`, so that mypy proves every type the
    # topic carries handled or explicitly ignored; it calls use cases that take the precise type.
    async def on_event(event: Event, delivery: Delivery) -> None:
        await activity.consumed(
            get_topic(delivery.topic),
            event,
            delivery.envelope,
{%- if cookiecutter.owns_schema %}
            delivery.conn,
{%- endif %}
        )
{% if consumes %}
    topics = (
{%- for constant in constants %}
        {{ constant }},
{%- endfor %}
    )
    if {topic.name for topic in topics} != set(service_manifest(__name__).consumes):
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")
    for topic in topics:
        bus.subscribe(
            topic, group=f"{settings.consumer_group}.{topic.name}", handler=on_event, db=db
        )
{%- else %}
    if consumes := service_manifest(__name__).consumes:
        raise RuntimeError(f"{settings.service_name} declares {consumes} but handles none")
{%- endif %}
