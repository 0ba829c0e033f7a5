"""E-mail channels: a fill delivered as a plain-text mail to a real SMTP server (aiosmtpd, with
AUTH) on loopback, through the running service on the real broker and Postgres; STARTTLS with a
certificate checked against the host; the SMTP settings refused where mail may not go; and the
password never in an answer or a log."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_events import orders
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_testing.samples import build_sample
from trademesh_testing.tokens import bearer
from trademesh_testing.waiting import eventually

from trademesh_notify.api.deps import Runtime
from trademesh_notify.engine import ChannelKind, notice_of
from trademesh_notify.render import render
from trademesh_notify.store import Due
from trademesh_notify.transports import SendError
from trademesh_notify.transports.smtp import EmailTransport
from trademesh_notify.webhook.ssrf import AddressKind

pytestmark = [
    pytest.mark.integration,
    # aiosmtpd warns of each connection to the plain server: AUTH without TLS, meant here.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

USER, PASSWORD = "alice", "correct horse battery staple"  # pragma: allowlist secret


@dataclass
class Mailbox:
    """What a real SMTP server on loopback received, and who logged in to send it."""

    port: int = 0
    logins: list[str] = field(default_factory=list)
    mails: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # a refusal: aiosmtpd answers 535

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert session.authenticated  # auth_required refuses MAIL before this anyway
        mail = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), mail))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smtp_server(mailbox: Mailbox, **smtp: Any) -> Controller:
    """aiosmtpd on a loopback port (in its own thread), logins required."""
    mailbox.port = free_port()
    return Controller(
        mailbox,
        hostname="127.0.0.1",
        port=mailbox.port,
        authenticator=mailbox.authenticate,
        auth_required=True,
        **smtp,
    )


@pytest.fixture
def plain_mailbox() -> Iterator[Mailbox]:
    """A server without TLS: the service may use plain SMTP to it, as it is on loopback and the
    tests allow loopback (an admin's setting)."""
    mailbox = Mailbox()
    server = smtp_server(mailbox, auth_require_tls=False)
    server.start()
    yield mailbox
    server.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (as an IP address SAN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    made = Certificate(folder / "cert.pem", folder / "key.pem")
    made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


@pytest.fixture
def tls_mailbox(certificate: Certificate) -> Iterator[Mailbox]:
    """A server that requires STARTTLS before anything else (AUTH included)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    mailbox = Mailbox()
    server = smtp_server(mailbox, tls_context=context, require_starttls=True)
    server.start()
    yield mailbox
    server.stop()


def email_body(port: int, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "from": "notify@trademesh.example",
        "to": ["alice@example.com"],
        "tls": "none",
        "events": ["fill"],
        **changes,
    }


def fill_of(user: UUID) -> orders.OrderFilled:
    fill = build_sample(orders.OrderFilled, user_id=user, account_id=uuid4())
    assert isinstance(fill, orders.OrderFilled)
    return fill


async def _status(app: FastAPI, channel_id: str, status: str) -> list[Any] | None:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    rows = await runtime.deliveries.store.of_channel(UUID(channel_id))
    return rows if rows and rows[0]["status"] == status else None


# ---- through the service ---------------------------------------------------------------------


async def test_a_fill_reaches_its_owners_mailbox_as_plain_text_after_a_login(
    client: httpx.AsyncClient,
    app: FastAPI,
    plain_mailbox: Mailbox,
    producer: Bus,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    user = uuid4()
    made = await client.post(
        "/api/v1/notify/channels", json=email_body(plain_mailbox.port), headers=bearer(user)
    )
    assert made.status_code == 201, made.text
    channel = made.json()
    assert channel["config"] == {
        "host": "127.0.0.1",
        "port": plain_mailbox.port,
        "username": USER,
        "from": "notify@trademesh.example",
        "to": ["alice@example.com"],
        "tls": "none",
    }
    listed = await client.get("/api/v1/notify/channels", headers=bearer(user))
    fill = fill_of(user)
    envelope = await producer.publish(fill, topic=ORDERS_EVENTS_TOPIC)

    await eventually(lambda: _status(app, channel["id"], "sent"))
    assert plain_mailbox.logins == [USER]
    [(sender, recipients, mail)] = plain_mailbox.mails
    assert (sender, recipients) == ("notify@trademesh.example", ["alice@example.com"])
    symbol = str(fill.instrument_id).split(":", 1)[1]
    assert (
        mail["Subject"] == f"Fill: {fill.side.upper()} {fill.last_qty} {symbol} @ {fill.last_price}"
    )
    assert mail["Message-ID"] == f"<{envelope.id}.{channel['id']}@notify.trademesh>"
    assert mail.get_content_type() == "text/plain"
    text = mail.get_content()
    assert f"Account: {fill.account_id}" in text
    assert f" {fill.last_qty} {symbol} at {fill.last_price}" in text

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    captured = capsys.readouterr()
    assert "opened a secret" in logged + caplog.text  # the logs were captured at all
    for shown in (made.text, listed.text, logged, caplog.text, captured.out, captured.err):
        assert PASSWORD not in shown


async def test_a_wrong_smtp_password_makes_the_delivery_dead_at_once(
    client: httpx.AsyncClient, app: FastAPI, plain_mailbox: Mailbox, producer: Bus
) -> None:
    user = uuid4()
    wrong = "not the password"  # pragma: allowlist secret
    made = await client.post(
        "/api/v1/notify/channels",
        json=email_body(plain_mailbox.port, password=wrong),
        headers=bearer(user),
    )
    channel = made.json()
    await producer.publish(fill_of(user), topic=ORDERS_EVENTS_TOPIC)
    rows = await eventually(lambda: _status(app, channel["id"], "dead"))
    assert rows[0]["attempts"] == 1  # a 535 will not change by itself
    assert rows[0]["last_error"] == "SMTP answered 535 (SMTPAuthenticationError)"
    assert plain_mailbox.mails == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"host": "8.8.8.8", "tls": "none"}, "/problems/smtp-server"),  # plain SMTP, public
        ({"host": "10.0.0.1", "tls": "starttls"}, "/problems/smtp-server"),  # private: not allowed
        ({"host": "smtp.example.com\r\nQUIT"}, "about:blank"),
        ({"from": "a@example.com\r\nBcc: b@example.com"}, "about:blank"),
        ({"to": []}, "about:blank"),
        ({"tls": "ssl"}, "about:blank"),
        ({"password": PASSWORD + "\r\nQUIT"}, "about:blank"),
        ({"kind": "fax"}, "about:blank"),
    ],
)
async def test_email_settings_mail_may_not_use_are_422_problems_that_never_quote_the_password(
    client: httpx.AsyncClient, changes: dict[str, Any], problem: str
) -> None:
    user = uuid4()
    refused = await client.post(
        "/api/v1/notify/channels", json=email_body(25, **changes), headers=bearer(user)
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == problem
    assert PASSWORD not in refused.text
    assert (await client.get("/api/v1/notify/channels", headers=bearer(user))).json() == []


# ---- the transport alone, over STARTTLS ------------------------------------------------------


def due_of(port: int, tls: str) -> Due:
    fill = fill_of(uuid4())
    notice = notice_of(fill, new_envelope(fill, "execution"))
    assert notice is not None
    config = {
        key: value
        for key, value in email_body(port, tls=tls).items()
        if key not in ("kind", "password", "events")
    }
    return Due(
        notice.event_id, uuid4(), ChannelKind.EMAIL, None, config, b"", fill.type, notice.body, 0
    )


def clock() -> datetime:
    return datetime.now(UTC)


async def test_starttls_checks_the_servers_certificate_against_the_host_then_logs_in(
    tls_mailbox: Mailbox, certificate: Certificate
) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate.cert))
    transport = EmailTransport({AddressKind.LOOPBACK}, 5.0, clock, tls_context=trusting)
    due = due_of(tls_mailbox.port, "starttls")
    await transport.send(due, PASSWORD)
    assert tls_mailbox.logins == [USER]
    [(_, _, mail)] = tls_mailbox.mails
    assert mail["Subject"] == render(due.body).subject


async def test_starttls_to_a_server_whose_certificate_is_not_trusted_is_refused(
    tls_mailbox: Mailbox,
) -> None:
    transport = EmailTransport({AddressKind.LOOPBACK}, 5.0, clock)  # the system's trust store
    with pytest.raises(SendError) as refused:
        await transport.send(due_of(tls_mailbox.port, "starttls"), PASSWORD)
    assert not refused.value.permanent
    assert PASSWORD not in str(refused.value)
    assert (tls_mailbox.logins, tls_mailbox.mails) == ([], [])


async def test_plain_smtp_to_a_server_that_requires_starttls_never_sends_the_password(
    tls_mailbox: Mailbox,
) -> None:
    transport = EmailTransport({AddressKind.LOOPBACK}, 5.0, clock)
    with pytest.raises(SendError):
        await transport.send(due_of(tls_mailbox.port, "none"), PASSWORD)
    assert (tls_mailbox.logins, tls_mailbox.mails) == ([], [])
