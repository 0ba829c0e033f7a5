"""The mail of a delivery, and where plain SMTP may go: pure."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from email import message_from_bytes, policy
from uuid import uuid4

import pytest
from trademesh_events import orders
from trademesh_events.envelope import new_envelope
from trademesh_testing.samples import build_sample

from trademesh_notify.channel_config import EmailConfig
from trademesh_notify.engine import ChannelKind, notice_of
from trademesh_notify.render import render
from trademesh_notify.store import Due
from trademesh_notify.transports.smtp import message_of, plain_allowed

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("addresses", "allowed"),
    [
        (["127.0.0.1"], True),
        (["10.1.2.3", "192.168.0.9"], True),
        (["::1", "127.0.0.1"], True),
        (["8.8.8.8"], False),
        (["10.1.2.3", "8.8.8.8"], False),  # one public address is enough to refuse
        ([], False),
    ],
)
def test_plain_smtp_is_allowed_only_when_no_address_is_public(
    addresses: list[str], allowed: bool
) -> None:
    assert plain_allowed(ipaddress.ip_address(a) for a in addresses) is allowed


def test_the_mail_of_a_fill_is_its_rendering_with_a_stable_message_id() -> None:
    fill = build_sample(orders.OrderFilled, user_id=uuid4(), account_id=uuid4())
    notice = notice_of(fill, new_envelope(fill, "execution", time=T0))
    assert notice is not None
    due = Due(notice.event_id, uuid4(), ChannelKind.EMAIL, None, {}, b"", fill.type, notice.body, 0)
    config = EmailConfig.model_validate(
        {
            "host": "smtp.example.com",
            "port": 587,
            "username": "alice",
            "from": "bot@example.com",
            "to": ["alice@example.com", "ops@example.com"],
        }
    )
    mail = message_from_bytes(message_of(due, config, T0).as_bytes(), policy=policy.default)
    rendered = render(notice.body)
    assert mail["Subject"] == rendered.subject
    assert (mail["From"], mail["To"]) == ("bot@example.com", "alice@example.com, ops@example.com")
    assert mail["Message-ID"] == f"<{due.event_id}.{due.channel_id}@notify.trademesh>"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().strip() == rendered.text
