"""The whole-suite secrets guard sees tokens, API keys and registered secrets in any log line."""

from __future__ import annotations

import logging

import pytest
from trademesh_testing.secrets_guard import GUARD, register_secret
from trademesh_testing.tokens import mint

pytestmark = pytest.mark.unit


def test_the_guard_listens_on_the_root_logger() -> None:
    assert GUARD in logging.getLogger().handlers


def test_tokens_keys_and_registered_secrets_are_caught_wherever_they_are() -> None:
    register_secret("hunter2-but-longer")
    log = logging.getLogger("trademesh.test.guard")
    log.setLevel(logging.INFO)
    token = mint()
    key = "tmk_0123456789abcdef_" + "A" * 43
    with GUARD.allowing() as seen:
        log.info("a token %s", token)
        log.info({"event": "structlog-style", "api_key": key})
        log.warning("failed", exc_info=ValueError("password hunter2-but-longer"))
        log.info("an ordinary line with eyJ but no token, and tmk_ too")
    assert [f.logger for f in seen] == ["trademesh.test.guard"] * 3
    assert all(len(f.excerpt) <= 7 for f in seen)  # the report itself leaks nothing
    assert GUARD.findings == []  # allowed here, so the session is not failed by this test


def test_short_literals_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        register_secret("abc")
