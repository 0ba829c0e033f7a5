"""The Kafka security every client of ours uses: FastStream security objects and aiokafka kwargs."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import SecretStr
from trademesh_bus.broker import broker_security, client_security, create_bulk_producer
from trademesh_config import KafkaSettings

pytestmark = pytest.mark.unit

PASSWORD = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=x"


def sasl(protocol: str, mechanism: str = "PLAIN") -> KafkaSettings:
    return KafkaSettings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="$ConnectionString",
        kafka_sasl_password=SecretStr(PASSWORD),
    )


def test_plaintext_adds_nothing() -> None:
    settings = KafkaSettings()
    assert broker_security(settings) is None
    assert client_security(settings) == {}


def test_ssl_verifies_the_brokers_certificates() -> None:
    settings = KafkaSettings(kafka_security_protocol="SSL")
    security = broker_security(settings)
    assert type(security) is BaseSecurity and security.use_ssl
    options = client_security(settings)
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_event_hubs_login_is_sasl_ssl_plain_with_the_connection_string() -> None:
    options = client_security(sasl("SASL_SSL"))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "PLAIN"
    assert options["sasl_plain_username"] == "$ConnectionString"
    assert options["sasl_plain_password"] == PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    ("mechanism", "cls"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_mechanism_picks_the_security_class(mechanism: str, cls: type[BaseSecurity]) -> None:
    security = broker_security(sasl("SASL_PLAINTEXT", mechanism))
    assert type(security) is cls
    assert not security.use_ssl and security.ssl_context is None
    options = client_security(sasl("SASL_PLAINTEXT", mechanism))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism


async def test_bulk_producer_connects_like_the_broker() -> None:
    # aiokafka binds a producer to the running loop at construction, hence async; it is never
    # started, so no broker is needed.
    producer = create_bulk_producer(sasl("SASL_SSL", "SCRAM-SHA-512"), "svc")
    client = producer.client
    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == "SCRAM-SHA-512"
    assert client._sasl_plain_username == "$ConnectionString"
    assert isinstance(client._ssl_context, ssl.SSLContext)


def test_a_config_without_credentials_is_refused() -> None:
    class Incomplete:
        kafka_security_protocol = "SASL_SSL"
        kafka_sasl_mechanism = "PLAIN"
        kafka_sasl_username = None
        kafka_sasl_password = None
        kafka_ssl_cafile = None

    with pytest.raises(ValueError, match="needs a SASL username and password"):
        broker_security(Incomplete())  # type: ignore[arg-type]


def write_ca(path: Path, name: str) -> Path:
    """A self-signed CA certificate in PEM, like the one cert-manager makes for Redpanda."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_own_ca_file_replaces_the_system_cas(tmp_path: Path) -> None:
    ca = write_ca(tmp_path / "ca.crt", "redpanda-test-ca")
    settings = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="trademesh",
        kafka_sasl_password=SecretStr("pw"),
        kafka_ssl_cafile=str(ca),
    )
    context = client_security(settings)["ssl_context"]
    subjects = [dict(item[0] for item in c["subject"]) for c in context.get_ca_certs()]
    assert subjects == [{"commonName": "redpanda-test-ca"}]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
