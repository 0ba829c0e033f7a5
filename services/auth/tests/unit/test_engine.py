"""The auth domain alone: the password policy, throttling, scopes, API keys, token claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from trademesh_auth.engine import (
    Failures,
    Throttle,
    ThrottleRule,
    access_claims,
    api_key_hash,
    key_scopes,
    live_count,
    new_api_key,
    parse_api_key,
    password_problem,
    retry_after,
    scopes_of,
    secret_hash,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("seven77", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password", "common"),
        ("Qwerty123", "common"),
        ("alice@example.com", "e-mail"),
    ],
)
def test_the_password_policy(password: str, problem: str) -> None:
    found = password_problem(password, "Alice@Example.com")
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "password", ["correct horse battery staple", "x" * 128, "12345678!Zq", "пароль-без-правил"]
)
def test_no_composition_rules(password: str) -> None:
    assert password_problem(password, "bob@example.com") is None


def test_the_local_part_is_refused_too() -> None:
    assert password_problem("alice.smith", "alice.smith@example.com") is not None


def test_a_rule_doubles_from_its_threshold_up_to_its_cap() -> None:
    rule = ThrottleRule(threshold=3, base=S, cap=10 * S)
    assert [rule.delay(n).total_seconds() for n in range(8)] == [0, 0, 0, 1, 2, 4, 8, 10]
    assert rule.delay(10_000) == 10 * S  # no overflow


def _throttle() -> Throttle:
    return Throttle(
        per_ip=ThrottleRule(10, S, 900 * S),
        per_user_ip=ThrottleRule(3, S, 900 * S),
        per_user=ThrottleRule(20, S, 60 * S),
        window=timedelta(minutes=15),
    )


def test_the_longest_wait_applies_and_counts_expire() -> None:
    throttle = _throttle()
    counts = {
        "ip": Failures(2, T0),
        "user_ip": Failures(5, T0),  # 4 s
        "user": Failures(21, T0),  # 2 s
    }
    assert retry_after(throttle, counts, T0 + S) == 3 * S
    assert retry_after(throttle, counts, T0 + 4 * S) == timedelta(0)
    later = T0 + timedelta(minutes=15)
    assert live_count(Failures(5, T0), later, throttle.window) == 0
    assert retry_after(throttle, counts, later) == timedelta(0)


def test_a_user_is_never_locked_out_for_more_than_the_user_cap() -> None:
    throttle = _throttle()
    # A million failures from everywhere: the owner, from an address with none, waits a minute.
    counts = {"ip": None, "user_ip": None, "user": Failures(1_000_000, T0)}
    assert retry_after(throttle, counts, T0) == 60 * S


def test_scopes_follow_the_role_and_narrow_to_a_key() -> None:
    assert scopes_of("admin") == ("read", "trade", "account")
    assert scopes_of("trader", ["read"]) == ("read",)
    assert scopes_of("viewer") == ("read", "account")
    assert scopes_of("viewer", ["read", "trade"]) == ("read",)


def test_a_keys_token_never_manages_the_account() -> None:
    assert key_scopes("admin", ["read", "trade", "account"]) == ("read", "trade")
    assert key_scopes("trader", ["trade"]) == ("trade",)
    assert key_scopes("viewer", ["read", "trade"]) == ("read",)


def test_claims_carry_the_session_version_and_the_key() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    common = {
        "user_id": uuid4(),
        "role": "trader",
        "scopes": ("read",),
        "now": now,
        "ttl": timedelta(minutes=10),
        "issuer": "i",
        "audience": "a",
        "token_id": "j",
    }
    session = access_claims(**common, session_version=3).to_jwt()  # type: ignore[arg-type]
    assert session["session_version"] == 3 and "key_id" not in session
    key = access_claims(**common, session_version=3, key_id="0123456789abcdef").to_jwt()  # type: ignore[arg-type]
    assert key["key_id"] == "0123456789abcdef"


def test_api_keys_parse_and_hash() -> None:
    key_id, whole = new_api_key()
    assert parse_api_key(whole) == (key_id, whole.split("_", 2)[2])
    assert api_key_hash(whole) == secret_hash(whole) != secret_hash(whole + "x")
    for bad in (
        "",
        "tmk_",
        f"xyz_{key_id}_{'a' * 43}",
        f"tmk_{key_id}_short",
        "tmk_ZZ_" + "a" * 43,
    ):
        assert parse_api_key(bad) is None
    assert new_api_key()[1] != whole


def test_access_claims_live_at_most_15_minutes() -> None:
    user = uuid4()
    claims = access_claims(
        user_id=user,
        role="trader",
        scopes=("read", "trade"),
        now=T0,
        ttl=timedelta(minutes=10),
        issuer="i",
        audience="a",
        token_id="j",
    )
    payload = claims.to_jwt()
    assert payload["sub"] == str(user) and payload["scope"] == "read trade"
    assert payload["exp"] - payload["iat"] == 600 and payload["nbf"] == payload["iat"]
    with pytest.raises(ValueError, match="15 minutes"):
        access_claims(
            user_id=user,
            role="trader",
            scopes=(),
            now=T0,
            ttl=timedelta(minutes=16),
            issuer="i",
            audience="a",
            token_id="j",
        )
