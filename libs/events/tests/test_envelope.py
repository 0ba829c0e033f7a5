"""The CloudEvents envelope: headers round trip, UUIDv7 ids, and loud refusal of bad headers."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from trademesh_events import Envelope, EnvelopeError, marketdata, new_envelope, new_event_id
from trademesh_events.base import Event
from trademesh_events.envelope import CONTENT_TYPE, SPEC_VERSION

pytestmark = pytest.mark.unit

T = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REQUIRED = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time")


@pytest.fixture
def tick(make_sample: Callable[..., Event]) -> Event:
    return make_sample(marketdata.Tick)


@pytest.fixture
def headers(tick: Event) -> dict[str, str]:
    return new_envelope(tick, "marketdata", time=T).to_headers()


def test_new_envelope_fields(tick: Event) -> None:
    env = new_envelope(tick, "marketdata", time=T, subject="binance:BTC/USDT")
    assert env.type == "trademesh.md.tick" == tick.type
    assert env.source == "marketdata"
    assert env.time == T
    assert env.subject == "binance:BTC/USDT"
    assert env.specversion == SPEC_VERSION == "1.0"
    assert env.datacontenttype == CONTENT_TYPE == "application/json"
    assert env.traceparent is None
    assert env.id.version == 7


def test_new_envelope_defaults_time_to_now_utc(tick: Event) -> None:
    before = datetime.now(UTC)
    env = new_envelope(tick, "svc")
    after = datetime.now(UTC)
    assert env.time.utcoffset() == timedelta(0)
    assert before <= env.time <= after


def test_to_headers(tick: Event) -> None:
    env = dataclasses.replace(
        new_envelope(tick, "svc", time=T, subject="s"),
        traceparent=TRACEPARENT,
        tracestate="vendor=1",
    )
    headers = env.to_headers()
    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": str(env.id),
        "ce_type": "trademesh.md.tick",
        "ce_source": "svc",
        "ce_time": "2024-05-01T12:00:00.123456Z",
        "content-type": "application/json",
        "ce_subject": "s",
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=1",
    }


def test_optional_headers_omitted(headers: dict[str, str]) -> None:
    assert set(headers) == {*REQUIRED, "content-type"}


def test_ce_time_is_utc_with_z(tick: Event) -> None:
    cest = T.astimezone(timezone(timedelta(hours=2)))
    headers = new_envelope(tick, "svc", time=cest).to_headers()
    assert headers["ce_time"] == "2024-05-01T12:00:00.123456Z"


@pytest.mark.parametrize("with_trace", [False, True])
@pytest.mark.parametrize("subject", [None, "binance:BTC/USDT"])
def test_round_trip(tick: Event, with_trace: bool, subject: str | None) -> None:
    env = new_envelope(tick, "marketdata", time=T, subject=subject)
    if with_trace:
        env = dataclasses.replace(env, traceparent=TRACEPARENT, tracestate="a=b,c=d")
    back = Envelope.from_headers(env.to_headers())
    assert back == env
    assert back.traceparent == (TRACEPARENT if with_trace else None)
    assert back.time.utcoffset() == timedelta(0)


def test_round_trip_from_kafka_style_bytes_headers(tick: Event) -> None:
    env = dataclasses.replace(new_envelope(tick, "svc", time=T), traceparent=TRACEPARENT)
    kafka_headers = [(k, v.encode()) for k, v in env.to_headers().items()]
    assert Envelope.from_headers(kafka_headers) == env


def test_to_kafka_headers_match_to_headers(tick: Event) -> None:
    env = dataclasses.replace(
        new_envelope(tick, "svc", time=T, subject="s"),
        traceparent=TRACEPARENT,
        tracestate="vendor=1",
    )
    kafka = env.to_kafka_headers()
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in kafka)
    assert [(k, v.decode()) for k, v in kafka] == list(env.to_headers().items())
    assert Envelope.from_headers(kafka) == env


def test_to_kafka_headers_omit_unset_optionals(tick: Event) -> None:
    kafka = new_envelope(tick, "svc", time=T).to_kafka_headers()
    assert [k for k, _ in kafka] == [*REQUIRED, "content-type"]


def test_ce_time_formatting_per_instant(tick: Event) -> None:
    # the same instant in two zones formats alike; instants a microsecond apart do not
    cest = T.astimezone(timezone(timedelta(hours=2)))
    later = T + timedelta(microseconds=1)
    first = new_envelope(tick, "svc", time=T).to_headers()["ce_time"]
    assert new_envelope(tick, "svc", time=cest).to_headers()["ce_time"] == first
    assert new_envelope(tick, "svc", time=later).to_headers()["ce_time"] == (
        "2024-05-01T12:00:00.123457Z"
    )
    whole = T.replace(microsecond=0)
    assert new_envelope(tick, "svc", time=whole).to_headers()["ce_time"] == "2024-05-01T12:00:00Z"


def test_bytes_values_in_a_mapping(headers: dict[str, str]) -> None:
    as_bytes = {k: v.encode() for k, v in headers.items()}
    assert Envelope.from_headers(as_bytes) == Envelope.from_headers(headers)


def test_header_names_are_case_insensitive(headers: dict[str, str]) -> None:
    upper = {k.upper(): v for k, v in headers.items()}
    assert Envelope.from_headers(upper) == Envelope.from_headers(headers)


def test_unrelated_headers_ignored(headers: dict[str, str]) -> None:
    assert Envelope.from_headers(headers | {"x-retry": "3"}) == Envelope.from_headers(headers)


def test_content_type_defaults(headers: dict[str, str]) -> None:
    del headers["content-type"]
    assert Envelope.from_headers(headers).datacontenttype == CONTENT_TYPE


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_header(headers: dict[str, str], name: str) -> None:
    del headers[name]
    with pytest.raises(EnvelopeError, match=name):
        Envelope.from_headers(headers)


@pytest.mark.parametrize("name", REQUIRED)
def test_empty_required_header(headers: dict[str, str], name: str) -> None:
    with pytest.raises(EnvelopeError, match=name):
        Envelope.from_headers(headers | {name: ""})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ce_specversion", "0.3", "ce_specversion"),
        ("ce_id", "not-a-uuid", "ce_id"),
        ("ce_time", "yesterday", "ce_time"),
        ("ce_time", "2024-05-01T12:00:00", "ce_time has no timezone"),
        ("traceparent", "garbage", "traceparent"),
        ("traceparent", TRACEPARENT.upper(), "traceparent"),
        ("traceparent", TRACEPARENT + "-extra", "traceparent"),
        ("traceparent", "", "traceparent"),
    ],
)
def test_malformed_header(headers: dict[str, str], name: str, value: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_headers(headers | {name: value})


def test_non_utf8_header(headers: dict[str, str]) -> None:
    raw: dict[str, str | bytes] = dict(headers)
    raw["ce_source"] = b"\xff\xfe"
    with pytest.raises(EnvelopeError, match="ce_source"):
        Envelope.from_headers(raw)


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)


def test_envelope_is_frozen(tick: Event) -> None:
    env = new_envelope(tick, "svc", time=T)
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.source = "other"  # type: ignore[misc]


def test_ids_are_uuid7() -> None:
    ids = [new_event_id() for _ in range(200)]
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)


def test_ids_are_time_ordered() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)


def test_id_timestamp_is_now() -> None:
    before = datetime.now(UTC)
    event_id = new_event_id()
    after = datetime.now(UTC)
    millis = event_id.int >> 80  # the first 48 bits: Unix time in milliseconds
    stamp = datetime.fromtimestamp(millis / 1000, UTC)
    # a generator may bump the timestamp to stay monotonic within a millisecond: allow a little.
    assert before - timedelta(milliseconds=1) <= stamp <= after + timedelta(seconds=5)


def test_envelope_ids_are_fresh(tick: Event) -> None:
    first = new_envelope(tick, "svc", time=T)
    second = new_envelope(tick, "svc", time=T)
    assert first.id != second.id
    assert first.id < second.id


def test_all_zero_traceparent_refused(headers: dict[str, str]) -> None:
    with pytest.raises(EnvelopeError, match="traceparent"):
        Envelope.from_headers(headers | {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"})


def test_new_envelope_refuses_a_naive_time(make_sample: Callable[..., Event]) -> None:
    event = make_sample(marketdata.Tick)
    with pytest.raises(ValueError, match="timezone-aware"):
        new_envelope(event, "svc", time=datetime(2026, 1, 1))
