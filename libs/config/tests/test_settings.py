"""Settings: env prefix, fail-fast loading and the env/dotenv secrets providers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from trademesh_config import (
    ChainSecrets,
    ConsumerGroup,
    DotenvSecrets,
    EnvSecrets,
    Port,
    SchemaName,
    SecretsError,
    ServiceName,
    ServiceSettings,
    SettingsError,
    load_settings,
)

pytestmark = pytest.mark.unit

PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TRADEMESH_"):
            monkeypatch.delenv(name)


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "8123")
    monkeypatch.setenv("TRADEMESH_KAFKA_IDEMPOTENCE", "false")
    monkeypatch.setenv("TRADEMESH_DATABASE_URL", f"postgresql://u:{PASSWORD}@db:5432/x")
    settings = load_settings(ServiceSettings)
    assert settings.http_port == 8123
    assert settings.kafka_idempotence is False
    assert settings.database_url.get_secret_value().endswith("@db:5432/x")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())


def test_settings_are_frozen() -> None:
    settings = load_settings(ServiceSettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.http_port = 1  # type: ignore[misc]


def test_invalid_setting_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "not-a-port")
    monkeypatch.setenv("TRADEMESH_DATABASE_URL", f"mysql://u:{PASSWORD}@db/x")
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("trademesh: invalid settings: ")
    assert "TRADEMESH_HTTP_PORT" in err
    assert "TRADEMESH_DATABASE_URL: Value error, must be a postgresql:// URL" in err
    assert PASSWORD not in err
    assert "not-a-port" not in err


def test_bad_bootstrap_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_KAFKA_BOOTSTRAP", "localhost")
    with pytest.raises(SettingsError, match="TRADEMESH_KAFKA_BOOTSTRAP"):
        load_settings(ServiceSettings, exit_on_error=False)


def test_missing_required_setting_is_named() -> None:
    class ExchangeSettings(ServiceSettings):
        exchange_api_key: SecretStr

    with pytest.raises(SettingsError) as caught:
        load_settings(ExchangeSettings, exit_on_error=False)
    assert str(caught.value) == "invalid settings: TRADEMESH_EXCHANGE_API_KEY: Field required"


def _dotenv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trademesh.env"
    path.write_text(text)
    return path


def test_dotenv_provider_supplies_settings_and_secrets(tmp_path: Path) -> None:
    class ExchangeSettings(ServiceSettings):
        exchange_api_key: SecretStr

    path = _dotenv(
        tmp_path,
        "# comment\nTRADEMESH_EXCHANGE_API_KEY='key with spaces'\nTRADEMESH_HTTP_PORT=9001\n",
    )
    settings = load_settings(ExchangeSettings, secrets=DotenvSecrets(path))
    assert settings.exchange_api_key.get_secret_value() == "key with spaces"
    assert settings.http_port == 9001
    assert isinstance(settings, ExchangeSettings)


def test_environment_wins_over_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _dotenv(tmp_path, "TRADEMESH_HTTP_PORT=9001\nTRADEMESH_LOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("TRADEMESH_HTTP_PORT", "9002")
    settings = load_settings(ServiceSettings, secrets=DotenvSecrets(path))
    assert settings.http_port == 9002
    assert settings.log_level == "DEBUG"


def test_provider_chosen_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _dotenv(tmp_path, "TRADEMESH_HTTP_PORT=9003\n")
    monkeypatch.setenv("TRADEMESH_SECRETS_PROVIDER", "dotenv")
    monkeypatch.setenv("TRADEMESH_SECRETS_DOTENV_PATH", str(path))
    assert load_settings(ServiceSettings).http_port == 9003


def test_invalid_value_from_provider_says_where_it_came_from(tmp_path: Path) -> None:
    path = _dotenv(tmp_path, f"TRADEMESH_DATABASE_URL=mysql://u:{PASSWORD}@h/x\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings, secrets=DotenvSecrets(path), exit_on_error=False)
    message = str(caught.value)
    assert "TRADEMESH_DATABASE_URL" in message
    assert f"dotenv file {path}" in message
    assert PASSWORD not in message


def test_missing_dotenv_file_stops_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEMESH_SECRETS_PROVIDER", "dotenv")
    monkeypatch.setenv("TRADEMESH_SECRETS_DOTENV_PATH", str(tmp_path / "absent.env"))
    with pytest.raises(SettingsError):
        load_settings(ServiceSettings)
    err = capsys.readouterr().err
    assert (
        err
        == f"trademesh: secrets provider: dotenv secrets file {tmp_path / 'absent.env'} does not exist\n"
    )


def test_vault_provider_needs_address_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMESH_SECRETS_PROVIDER", "vault")
    with pytest.raises(SettingsError, match="TRADEMESH_VAULT_ADDR is required"):
        load_settings(ServiceSettings, exit_on_error=False)
    monkeypatch.setenv("TRADEMESH_VAULT_ADDR", "http://127.0.0.1:1")
    with pytest.raises(SettingsError, match="needs TRADEMESH_VAULT_TOKEN or"):
        load_settings(ServiceSettings, exit_on_error=False)


def test_env_provider_and_chain() -> None:
    env = EnvSecrets({"TRADEMESH_A": "from-env"})
    assert env.get("a") == SecretStr("from-env")
    assert env.get("b") is None
    chain = ChainSecrets([env, EnvSecrets({"TRADEMESH_A": "second", "TRADEMESH_B": "b"})])
    assert chain.get("a").get_secret_value() == "from-env"  # type: ignore[union-attr]
    assert chain.get("b").get_secret_value() == "b"  # type: ignore[union-attr]
    assert chain.get("c") is None
    assert "from-env" not in repr(env)


def test_custom_environment_mapping_is_used_as_a_source() -> None:
    settings = load_settings(ServiceSettings, secrets=EnvSecrets({"TRADEMESH_HTTP_PORT": "9004"}))
    assert settings.http_port == 9004


def test_dotenv_missing_file_raises() -> None:
    with pytest.raises(SecretsError, match="does not exist"):
        DotenvSecrets("/nonexistent/trademesh.env")


def _jwk(**overrides: object) -> dict[str, object]:
    key: dict[str, object] = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "kid": "k1",
        "use": "sig",
        "alg": "EdDSA",
    }
    key.update(overrides)
    return {k: v for k, v in key.items() if v is not None}


def test_auth_defaults() -> None:
    settings = ServiceSettings()
    assert settings.auth_jwks_url == "http://127.0.0.1:8500/.well-known/jwks.json"
    assert settings.auth_jwks is None
    assert (settings.auth_issuer, settings.auth_audience) == ("trademesh-auth", "trademesh")


def test_an_inline_jwks_of_ed25519_keys_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    document = json.dumps({"keys": [_jwk(), _jwk(kid="k2", use=None, alg=None)]})
    monkeypatch.setenv("TRADEMESH_AUTH_JWKS", document)
    assert load_settings(ServiceSettings, exit_on_error=False).auth_jwks == document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("not json", "JSON"),
        ("[]", "JWKS"),
        ('{"keys": []}', "JWKS"),
        ({"keys": [_jwk(kty="RSA")]}, "Ed25519"),
        ({"keys": [_jwk(crv="Ed448")]}, "Ed25519"),
        ({"keys": [_jwk(crv="X25519")]}, "Ed25519"),
        ({"keys": [_jwk(d="private-part")]}, "private"),
        ({"keys": [_jwk(kid=None)]}, "kid"),
        ({"keys": [_jwk(), _jwk()]}, "twice"),
        ({"keys": [_jwk(x=None)]}, "public key"),
        ({"keys": [_jwk(alg="RS256")]}, "EdDSA"),
        ({"keys": [_jwk(use="enc")]}, "signature"),
    ],
)
def test_a_bad_inline_jwks_stops_the_start(document: object, reason: str) -> None:
    import json

    raw = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(SettingsError) as raised:
        load_settings(ServiceSettings, exit_on_error=False, auth_jwks=raw)
    assert "TRADEMESH_AUTH_JWKS" in str(raised.value) and reason in str(raised.value)


def test_the_jwks_url_is_an_http_url() -> None:
    with pytest.raises(SettingsError, match="TRADEMESH_AUTH_JWKS_URL"):
        load_settings(ServiceSettings, exit_on_error=False, auth_jwks_url="file:///etc/keys")


def test_trusted_proxies_are_networks_from_a_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(ServiceSettings).trusted_proxies == []  # nobody's word by default
    monkeypatch.setenv("TRADEMESH_TRUSTED_PROXIES", "10.42.0.0/16, 127.0.0.1,::1")
    assert [str(n) for n in load_settings(ServiceSettings).trusted_proxies] == [
        "10.42.0.0/16",
        "127.0.0.1/32",  # a bare address is one host
        "::1/128",
    ]
    monkeypatch.setenv("TRADEMESH_TRUSTED_PROXIES", '["172.30.0.128/25"]')
    assert [str(n) for n in load_settings(ServiceSettings).trusted_proxies] == ["172.30.0.128/25"]


@pytest.mark.parametrize(
    "value",
    [
        "10.42.0.1/16",  # host bits set: a typo for the network or for one host
        "gateway",
        "0.0.0.0/0",  # everyone: any client could name any address as its own
        "::/0",
    ],
)
def test_a_trusted_proxy_that_is_not_a_proxys_network_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEMESH_TRUSTED_PROXIES", value)
    with pytest.raises(SettingsError):
        load_settings(ServiceSettings)


def test_a_service_default_keeps_the_bases_constraints() -> None:
    class Pricing(ServiceSettings):
        service_name: ServiceName = "pricing"
        http_port: Port = 8700
        database_schema: SchemaName = "pricing"
        consumer_group: ConsumerGroup = "pricing"

    settings = Pricing()
    assert (settings.service_name, settings.http_port, settings.consumer_group) == (
        "pricing",
        8700,
        "pricing",
    )
    for field, bad in [
        ("service_name", "Pricing Service"),
        ("http_port", 70000),
        ("database_schema", "pricing-eu"),
        ("consumer_group", "Not A Group"),
    ]:
        with pytest.raises(ValidationError, match=field):
            Pricing(**{field: bad})
