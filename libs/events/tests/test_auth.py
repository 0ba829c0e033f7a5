"""Auth events carry facts, never secrets; e-mails are masked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from trademesh_events import get_topic
from trademesh_events.auth import LoginFailed, MaskedEmail, UserRegistered, mask_email
from trademesh_events.base import Event
from trademesh_events.schema import topic_schema
from trademesh_events.topics import AUTH_EVENTS

pytestmark = pytest.mark.unit

SECRET_WORDS = ("password", "passwd", "secret", "token", "hash", "salt", "otp", "credential")
AUTH = get_topic(AUTH_EVENTS)


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("  Bob.Smith@Example.COM ", "B***@example.com"),
        ("x@y.io", "x***@y.io"),
        ('"a@b"@example.com', '"***@example.com'),  # the last @ separates the domain
        ("@example.com", "***@example.com"),
        ("no-at-sign", "***@invalid"),
        ("trailing@", "***@invalid"),
        ("", "***@invalid"),
    ],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask_email(email) == masked
    assert TypeAdapter(MaskedEmail).validate_python(masked) == masked


def test_mask_email_hides_the_local_part() -> None:
    masked = mask_email("very.secret.person@example.com")
    assert "very" not in masked
    assert "secret" not in masked
    assert masked.count("*") == 3


@pytest.mark.parametrize(
    "email",
    ["alice@example.com", "a@example.com", "alice", "alice@", "al***@example.com", "a**@x.io"],
)
def test_unmasked_email_refused(email: str, sample_kwargs: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValidationError, match="email"):
        LoginFailed(**sample_kwargs(LoginFailed, email=email))
    with pytest.raises(ValidationError, match="email"):
        UserRegistered(**sample_kwargs(UserRegistered, email=email))


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names |= set(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def test_no_secret_fields_in_auth_schemas() -> None:
    names = _property_names(topic_schema(AUTH))
    assert "email" in names and "key_id" in names  # the walk does find fields
    for name in names:
        assert not any(word in name.lower() for word in SECRET_WORDS), name


@pytest.mark.parametrize("cls", AUTH.events, ids=lambda c: c.__name__)
def test_no_secret_fields_on_auth_events(cls: type[Event]) -> None:
    for name in cls.model_fields:
        assert not any(word in name.lower() for word in SECRET_WORDS), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("cls", AUTH.events, ids=lambda c: c.__name__)
def test_secrets_cannot_be_smuggled_in(
    cls: type[Event], sample_kwargs: Callable[..., dict[str, Any]]
) -> None:
    for name in ("password", "token", "api_key_secret"):
        with pytest.raises(ValidationError, match=name):
            cls(**sample_kwargs(cls, **{name: "hunter2"}))


def test_encoded_auth_events_carry_no_full_email(make_sample: Callable[..., Event]) -> None:
    for cls in AUTH.events:
        data = AUTH.encode(make_sample(cls))
        assert b"alice@" not in data and b"mallory@" not in data
        assert "password" not in json.loads(data)


@pytest.mark.parametrize(
    "email",
    ["*bob@example.com", "@@example.com", "a@" + "d" * 300],
    ids=["star-first", "at-first", "long-domain"],
)
def test_mask_email_output_is_always_a_valid_masked_email(
    email: str, sample_kwargs: Callable[..., dict[str, Any]]
) -> None:
    event = LoginFailed(**sample_kwargs(LoginFailed, email=mask_email(email)))
    assert event.email.count("*") >= 3
