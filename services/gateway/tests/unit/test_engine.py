"""The route table and the pure rules, without a broker or a service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import uuid4

import pytest

from trademesh_gateway.engine import (
    ROUTES,
    Route,
    capped_limit,
    event_owner,
    forward_request_headers,
    forward_response_headers,
    owned_body_values,
    resend_intent,
    role_allows,
)

pytestmark = pytest.mark.unit


def test_every_owned_route_names_its_parameter_and_writes_need_a_trader() -> None:
    for route in ROUTES:
        if route.ownership in ("service", "account"):
            assert route.owned in route.params, route
        if route.method != "GET" and not route.public and not route.account_holder:
            assert route.min_role in ("trader", "admin"), route
    with pytest.raises(ValueError, match="owned parameter"):
        Route("GET", "/bots", "strategy", "viewer", "x", ownership="service", owned="bot_id")


def test_risk_account_routes_are_checked_by_the_gateway() -> None:
    """risk keeps limits by account id for any account: its routes must not trust the id."""
    for route in ROUTES:
        if route.service == "risk" and "{account_id}" in route.path and route.min_role != "admin":
            assert route.ownership == "account", route


def test_upstream_paths() -> None:
    risk = next(r for r in ROUTES if r.path == "/accounts/{account_id}/risk")
    assert risk.upstream_path({"account_id": "a1"}) == "/api/v1/accounts/a1"
    pnl = next(r for r in ROUTES if r.path == "/accounts/{account_id}/pnl")
    assert pnl.upstream_path({"account_id": "a1"}) == "/api/v1/accounts/a1/pnl"


@pytest.mark.parametrize(
    ("role", "least", "allowed"),
    [
        ("viewer", "public", True),
        ("viewer", "viewer", True),
        ("viewer", "trader", False),
        ("trader", "trader", True),
        ("trader", "admin", False),
        ("admin", "trader", True),
        ("root", "viewer", False),
    ],
)
def test_role_order(role: str, least: str, allowed: bool) -> None:
    assert role_allows(role, least) is allowed  # type: ignore[arg-type]


def test_request_headers_lose_identity_credentials_and_hops() -> None:
    sent = forward_request_headers(
        [
            ("Authorization", "Bearer x"),
            ("X-User-Id", "1"),
            ("x-user-role", "admin"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k"),
        ]
    )
    assert sent == [("Content-Type", "application/json"), ("Idempotency-Key", "k")]
    assert forward_response_headers([("Transfer-Encoding", "chunked"), ("ETag", "1")]) == [
        ("ETag", "1")
    ]


def test_the_clients_forwarding_headers_never_travel_upstream() -> None:
    # The gateway sends its own X-Forwarded-For and X-Forwarded-Proto (the client it resolved):
    # a service that trusts the gateway must never read what the client wrote.
    client_says = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Port", "443"),
        ("X-Real-IP", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
        ("Accept", "application/json"),
    ]
    assert forward_request_headers(client_says) == [("Accept", "application/json")]


def test_page_cap() -> None:
    assert capped_limit("5000", 1000) == "1000"
    assert capped_limit("1000", 1000) is None
    assert capped_limit("lots", 1000) is None


def test_event_owner_and_owned_body() -> None:
    user = uuid4()
    assert event_owner(SimpleNamespace(user_id=user)) == user
    assert event_owner(SimpleNamespace(account_id=user)) is None
    assert owned_body_values(b'{"account_id": "a", "x": 1}', ("account_id",)) == ["a"]
    assert owned_body_values(b"[1]", ("account_id",)) is None
    assert owned_body_values(b"{", ("account_id",)) is None


@pytest.mark.parametrize(
    "body",
    [b"[" * 60_000 + b"]" * 60_000, b'{"account_id": ' * 60_000 + b"1" + b"}" * 60_000],
    ids=["array", "object"],
)
def test_a_body_too_deep_to_parse_owns_nothing(body: bytes) -> None:
    assert owned_body_values(body, ("account_id",)) is None


@pytest.mark.parametrize(
    ("status", "age_s", "again"),
    [
        ("INITIALIZED", 0.0, False),  # the first post is still in flight
        ("INITIALIZED", 4.9, False),
        ("INITIALIZED", 5.0, True),  # undecided this long: its publish may have been lost
        ("INITIALIZED", 600.0, True),
        ("DENIED", 600.0, False),  # decided: nothing to send
        ("ACCEPTED", 600.0, False),
    ],
)
def test_a_resent_order_publishes_its_intent_again_only_when_long_undecided(
    status: str, age_s: float, again: bool
) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert resend_intent(status, created, created + timedelta(seconds=age_s)) is again
