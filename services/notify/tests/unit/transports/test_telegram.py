"""What the Bot API's answers mean to a delivery: pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trademesh_notify.transports import SendError
from trademesh_notify.transports.telegram import outcome

pytestmark = pytest.mark.unit

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret


def answer(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_ok_true_is_sent() -> None:
    outcome(200, answer(ok=True, result={"message_id": 1}))  # no exception


def test_ok_false_is_a_failure_to_try_again() -> None:
    with pytest.raises(SendError, match=r"^Telegram answered 200: Internal$") as failed:
        outcome(200, answer(ok=False, description="Internal"))
    assert (failed.value.permanent, failed.value.retry_after_s) == (False, None)


def test_a_429_asks_for_its_retry_after() -> None:
    body = answer(ok=False, error_code=429, description="Too Many Requests: retry after 7",
                  parameters={"retry_after": 7})  # fmt: skip
    with pytest.raises(SendError) as failed:
        outcome(429, body)
    assert (failed.value.retry_after_s, failed.value.permanent) == (7.0, False)


@pytest.mark.parametrize("after", [None, -3, "7", True])
def test_a_429_without_a_usable_retry_after_is_an_ordinary_retry(after: Any) -> None:
    with pytest.raises(SendError) as failed:
        outcome(429, answer(ok=False, error_code=429, parameters={"retry_after": after}))
    assert (failed.value.retry_after_s, failed.value.permanent) == (None, False)


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (400, "Bad Request: chat not found"),
        (403, "Forbidden: bot was blocked by the user"),
        (401, "Unauthorized"),
        (404, "Not Found"),
    ],
)
def test_an_answer_that_the_channel_is_wrong_is_permanent(status: int, description: str) -> None:
    with pytest.raises(SendError, match=rf"^Telegram answered {status}: {description}$") as failed:
        outcome(status, answer(ok=False, error_code=status, description=description))
    assert failed.value.permanent


@pytest.mark.parametrize(("status", "raw"), [(500, b"oops"), (502, b""), (200, b"<html>")])
def test_a_server_error_or_an_answer_not_from_the_bot_api_is_tried_again(
    status: int, raw: bytes
) -> None:
    with pytest.raises(SendError) as failed:
        outcome(status, raw)
    assert not failed.value.permanent


def test_a_description_never_carries_the_token_or_a_line_break() -> None:
    body = answer(ok=False, error_code=400, description=f"bad token {TOKEN}\nsecond line")
    with pytest.raises(SendError) as failed:
        outcome(400, body, TOKEN)
    assert TOKEN not in str(failed.value)
    assert "\n" not in str(failed.value)
