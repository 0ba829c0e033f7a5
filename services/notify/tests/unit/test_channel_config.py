"""What a Telegram or e-mail channel may be configured with: pure validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from trademesh_notify.channel_config import (
    EmailConfig,
    SmtpTls,
    TelegramConfig,
    check_bot_token,
    check_smtp_password,
)

pytestmark = pytest.mark.unit

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pragma: allowlist secret


def email(**changes: Any) -> dict[str, Any]:
    return {
        "host": "smtp.example.com",
        "port": 587,
        "username": "alice",
        "from": "bot@example.com",
        "to": ["alice@example.com"],
        **changes,
    }


@pytest.mark.parametrize("chat_id", [42, -1001234567890, "@trademesh_alerts"])
def test_a_chat_id_is_a_number_or_a_public_username(chat_id: int | str) -> None:
    assert TelegramConfig(chat_id=chat_id).chat_id == chat_id


@pytest.mark.parametrize("chat_id", ["", "alerts", "@a", "@bad name", 10**16, None])
def test_other_chat_ids_are_refused(chat_id: Any) -> None:
    with pytest.raises(ValidationError):
        TelegramConfig(chat_id=chat_id)


def test_a_bot_token_has_botfathers_form_and_a_refusal_does_not_quote_it() -> None:
    assert check_bot_token(SecretStr(TOKEN)).get_secret_value() == TOKEN
    for bad in (
        "",
        "123456789",
        f"{TOKEN}/../x",
        f"{TOKEN}?a=b",
        "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5",
    ):
        with pytest.raises(ValueError, match="not a Telegram bot token") as refused:
            check_bot_token(SecretStr(bad))
        assert not bad or bad not in str(refused.value)


def test_an_email_config_keeps_from_under_its_name_and_defaults_to_starttls() -> None:
    config = EmailConfig.model_validate(email())
    assert config.tls is SmtpTls.STARTTLS
    assert config.sender == "bot@example.com"
    assert config.stored() == {**email(), "tls": "starttls"}


@pytest.mark.parametrize(
    "changes",
    [
        {"host": "smtp.example.com\r\nRCPT TO:<x@y>"},
        {"host": "http://smtp.example.com"},
        {"host": ""},
        {"port": 0},
        {"port": 70000},
        {"username": "al\r\nice"},
        {"from": "bot@example.com\r\nBcc: victim@example.com"},
        {"from": "Bot <bot@example.com>"},
        {"to": []},
        {"to": ["a@example.com, b@example.com"]},
        {"to": [f"u{i}@example.com" for i in range(11)]},
        {"tls": "ssl"},
        {"password": "not here"},  # pragma: allowlist secret - not a field of the config
    ],
)
def test_an_email_config_refuses_injections_and_bad_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EmailConfig.model_validate(email(**changes))


def test_an_smtp_password_has_no_line_break_and_a_refusal_does_not_quote_it() -> None:
    assert check_smtp_password(SecretStr("pä ss:w0rd")).get_secret_value() == "pä ss:w0rd"
    for bad in ("", "pass\r\nQUIT", "x" * 513):
        with pytest.raises(ValueError, match="SMTP password") as refused:
            check_smtp_password(SecretStr(bad))
        assert not bad or bad not in str(refused.value)
