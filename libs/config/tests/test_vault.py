"""The Vault provider against a real Vault-compatible server (OpenBao dev mode)."""

from __future__ import annotations

import os
import subprocess
import sys

import hvac
import pytest
from pydantic import SecretStr
from trademesh_config import (
    SecretsError,
    ServiceSettings,
    SettingsError,
    VaultSecrets,
    load_settings,
)
from trademesh_infra.vault import DevVault

pytestmark = pytest.mark.integration

DB_PASSWORD = "vault-db-Pa55"


@pytest.fixture(scope="module")
def vault_client(dev_vault: DevVault) -> hvac.Client:
    client = hvac.Client(url=dev_vault.url, token=dev_vault.root_token)
    client.secrets.kv.v2.create_or_update_secret(
        path="trademesh/risk",
        mount_point="secret",
        secret={
            "database_url": f"postgresql://risk:{DB_PASSWORD}@db:5432/trademesh",
            "HTTP_PORT": "8044",
            "TRADEMESH_LOG_LEVEL": "DEBUG",
        },
    )
    return client


class RiskSettings(ServiceSettings):
    database_url: SecretStr  # required here: no default


def test_settings_from_vault_kv(dev_vault: DevVault, vault_client: hvac.Client) -> None:
    provider = VaultSecrets(
        dev_vault.url, token=SecretStr(dev_vault.root_token), path="trademesh/risk"
    )
    assert provider.keys() == ["database_url", "http_port", "log_level"]
    settings = load_settings(RiskSettings, secrets=provider)
    assert settings.database_url.get_secret_value().endswith(f":{DB_PASSWORD}@db:5432/trademesh")
    assert settings.http_port == 8044
    assert settings.log_level == "DEBUG"
    assert dev_vault.root_token not in repr(provider)
    assert DB_PASSWORD not in repr(settings)


def test_vault_chosen_by_environment_with_approle(
    dev_vault: DevVault, vault_client: hvac.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "approle/" not in vault_client.sys.list_auth_methods()["data"]:
        vault_client.sys.enable_auth_method("approle")
    vault_client.sys.create_or_update_policy(
        "risk-read", 'path "secret/data/trademesh/risk" { capabilities = ["read"] }'
    )
    vault_client.auth.approle.create_or_update_approle("risk", token_policies=["risk-read"])
    role_id = vault_client.auth.approle.read_role_id("risk")["data"]["role_id"]
    secret_id = vault_client.auth.approle.generate_secret_id("risk")["data"]["secret_id"]
    for name in [n for n in os.environ if n.startswith("TRADEMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRADEMESH_SECRETS_PROVIDER", "vault")
    monkeypatch.setenv("TRADEMESH_VAULT_ADDR", dev_vault.url)
    monkeypatch.setenv("TRADEMESH_VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("TRADEMESH_VAULT_SECRET_ID", secret_id)
    monkeypatch.setenv("TRADEMESH_VAULT_KV_PATH", "trademesh/risk")
    settings = load_settings(RiskSettings)
    assert settings.http_port == 8044

    # The same role may not read another service's secret.
    monkeypatch.setenv("TRADEMESH_VAULT_KV_PATH", "trademesh/execution")
    with pytest.raises(SettingsError) as caught:
        load_settings(RiskSettings, exit_on_error=False)
    assert "refused access to secret/trademesh/execution" in str(caught.value)
    assert secret_id not in str(caught.value)


def test_missing_secret_and_bad_token_are_clear(
    dev_vault: DevVault, vault_client: hvac.Client
) -> None:
    with pytest.raises(SecretsError, match="no KV v2 secret at secret/trademesh/absent"):
        VaultSecrets(dev_vault.url, token=SecretStr(dev_vault.root_token), path="trademesh/absent")
    with pytest.raises(SecretsError, match="refused access") as caught:
        VaultSecrets(dev_vault.url, token=SecretStr("wrong-token-value"), path="trademesh/risk")
    assert "wrong-token-value" not in str(caught.value)


def test_unreachable_vault_stops_the_process(dev_vault: DevVault) -> None:
    program = "from trademesh_config import *\nload_settings(ServiceSettings)\n"
    result = subprocess.run(
        [sys.executable, "-c", program],
        env={
            "PATH": "/usr/bin:/bin",
            "TRADEMESH_SECRETS_PROVIDER": "vault",
            "TRADEMESH_VAULT_ADDR": "http://127.0.0.1:9",
            "TRADEMESH_VAULT_TOKEN": "tok-should-not-print",
            "TRADEMESH_VAULT_ATTEMPTS": "2",
            "TRADEMESH_VAULT_TIMEOUT_S": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "trademesh: secrets provider: Vault at http://127.0.0.1:9 is unreachable after 2 attempts"
        " (ConnectionError)\n"
    )
