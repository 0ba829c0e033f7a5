"""The CloudEvents Kafka binary binding: ce_* headers around the event's JSON, plus W3C trace context."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from uuid_utils import compat as uuid_utils

from trademesh_events.base import Event

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUIRED = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time")


def _valid_traceparent(value: str) -> bool:
    """W3C Trace Context: the format, and trace-id / parent-id not all zeros, version not ff."""
    if not _TRACEPARENT.fullmatch(value):
        return False
    version, trace_id, parent_id, _flags = value.split("-")
    return version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16


class EnvelopeError(ValueError):
    """The headers are not a valid CloudEvents envelope; the message names the header."""


def new_event_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): unique, and sortable by creation time.

    uuid-utils (Rust) rather than a pure-Python generator: an id is made for every event
    published, and this one costs under a microsecond. The compat module returns uuid.UUID.
    """
    return uuid_utils.uuid7()


@functools.lru_cache(maxsize=256)
def _format_time(time: datetime) -> str:
    """RFC 3339 in UTC with a Z; cached because a batch of events shares one timestamp."""
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Envelope:
    id: uuid.UUID
    type: str
    source: str
    time: datetime
    specversion: str = SPEC_VERSION
    datacontenttype: str = CONTENT_TYPE
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def to_kafka_headers(self) -> list[tuple[str, bytes]]:
        """The headers as Kafka record headers (UTF-8 bytes), in the order of to_headers()."""
        headers = [
            ("ce_specversion", self.specversion.encode()),
            ("ce_id", str(self.id).encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", _format_time(self.time).encode()),
            ("content-type", self.datacontenttype.encode()),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        if self.traceparent is not None:
            headers.append(("traceparent", self.traceparent.encode()))
        if self.tracestate is not None:
            headers.append(("tracestate", self.tracestate.encode()))
        return headers

    def to_headers(self) -> dict[str, str]:
        headers = {
            "ce_specversion": self.specversion,
            "ce_id": str(self.id),
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_time": _format_time(self.time),
            "content-type": self.datacontenttype,
        }
        if self.subject is not None:
            headers["ce_subject"] = self.subject
        if self.traceparent is not None:
            headers["traceparent"] = self.traceparent
        if self.tracestate is not None:
            headers["tracestate"] = self.tracestate
        return headers

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]]
    ) -> Envelope:
        items = headers.items() if isinstance(headers, Mapping) else headers
        values: dict[str, str] = {}
        for key, raw in items:
            try:
                values[key.lower()] = raw if isinstance(raw, str) else raw.decode("utf-8")
            except UnicodeDecodeError:
                raise EnvelopeError(f"header {key} is not UTF-8") from None
        for name in _REQUIRED:
            if not values.get(name):
                raise EnvelopeError(f"missing header {name}")
        if values["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {values['ce_specversion']!r}")
        try:
            event_id = uuid.UUID(values["ce_id"])
        except ValueError:
            raise EnvelopeError("ce_id is not a UUID") from None
        try:
            time = datetime.fromisoformat(values["ce_time"].replace("Z", "+00:00"))
        except ValueError:
            raise EnvelopeError("ce_time is not an RFC 3339 timestamp") from None
        if time.tzinfo is None:
            raise EnvelopeError("ce_time has no timezone")
        traceparent = values.get("traceparent")
        if traceparent is not None and not _valid_traceparent(traceparent):
            raise EnvelopeError("traceparent is not W3C trace context")
        return cls(
            id=event_id,
            type=values["ce_type"],
            source=values["ce_source"],
            time=time,
            specversion=values["ce_specversion"],
            datacontenttype=values.get("content-type", CONTENT_TYPE),
            subject=values.get("ce_subject"),
            traceparent=traceparent,
            tracestate=values.get("tracestate"),
        )


def new_envelope(
    event: Event, source: str, *, time: datetime | None = None, subject: str | None = None
) -> Envelope:
    """A fresh envelope for `event` sent by `source` (a service name)."""
    if time is not None and time.tzinfo is None:
        raise ValueError("envelope time must be timezone-aware")
    return Envelope(
        id=new_event_id(),
        type=event.type,
        source=source,
        time=time or datetime.now(UTC),
        subject=subject,
    )
