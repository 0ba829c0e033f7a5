"""The events contract: event models, typed identifiers, topics and the CloudEvents envelope. Pure pydantic, no I/O."""

from trademesh_events.base import Event
from trademesh_events.envelope import Envelope, EnvelopeError, new_envelope, new_event_id
from trademesh_events.topics import TOPICS, TopicSpec, get_topic, topic_for

__all__ = [
    "TOPICS",
    "Envelope",
    "EnvelopeError",
    "Event",
    "TopicSpec",
    "get_topic",
    "new_envelope",
    "new_event_id",
    "topic_for",
]
