"""Kafka security settings: the protocol, SASL mechanism and credentials, checked together."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from trademesh_config import KafkaSettings, ServiceSettings, SettingsError, load_settings

pytestmark = pytest.mark.unit

CONNECTION_STRING = (
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s3cr3t"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRADEMESH_"):
            monkeypatch.delenv(name)


def test_default_is_plaintext_without_credentials() -> None:
    settings = KafkaSettings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_sasl_username is None
    assert settings.kafka_sasl_password is None


def test_event_hubs_settings_load_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_KAFKA_BOOTSTRAP", "ns.servicebus.windows.net:9093")
    monkeypatch.setenv("TRADEMESH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_USERNAME", "$ConnectionString")
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_PASSWORD", CONNECTION_STRING)
    settings = load_settings(ServiceSettings)
    assert settings.kafka_sasl_username == "$ConnectionString"
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == CONNECTION_STRING
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_password_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("TRADEMESH_KAFKA_SECURITY_PROTOCOL", protocol)
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_USERNAME", "$ConnectionString")
    with pytest.raises(SettingsError) as caught:
        load_settings(KafkaSettings, exit_on_error=False)
    message = str(caught.value)
    assert "TRADEMESH_KAFKA_SASL_PASSWORD" in message
    assert "TRADEMESH_KAFKA_SASL_USERNAME" not in message


def test_sasl_without_any_credential_names_both() -> None:
    with pytest.raises(ValueError, match="SASL_USERNAME and TRADEMESH_KAFKA_SASL_PASSWORD"):
        KafkaSettings(kafka_security_protocol="SASL_SSL")


def test_empty_password_counts_as_missing() -> None:
    with pytest.raises(ValueError, match="TRADEMESH_KAFKA_SASL_PASSWORD"):
        KafkaSettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="$ConnectionString",
            kafka_sasl_password="",
        )


def test_credentials_without_a_sasl_protocol_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_USERNAME", "$ConnectionString")
    monkeypatch.setenv("TRADEMESH_KAFKA_SASL_PASSWORD", CONNECTION_STRING)
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings, exit_on_error=False)
    assert "TRADEMESH_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_validation_errors_do_not_carry_the_password() -> None:
    # Even outside load_settings (which drops inputs), pydantic's own message must not hold it.
    with pytest.raises(ValueError, match="SASL credentials are set") as caught:
        KafkaSettings(kafka_security_protocol="SSL", kafka_sasl_password=CONNECTION_STRING)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("kafka_security_protocol", "SASL_TLS"), ("kafka_sasl_mechanism", "GSSAPI")],
)
def test_unknown_protocol_or_mechanism_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        KafkaSettings(**{name: value})


def test_ca_file_needs_a_tls_protocol(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValueError, match=r"KAFKA_SSL_CAFILE is set but .* is SASL_PLAINTEXT"):
        KafkaSettings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
            kafka_ssl_cafile=str(ca),
        )
    assert KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca)).kafka_ssl_cafile


def test_missing_ca_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KAFKA_SSL_CAFILE: no file at"):
        KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "none.crt"))
