"""Exchange accounts on the real Postgres: credentials sealed with the keystore, shown masked,
rotated without exposure, and never in a response or a log line."""

from __future__ import annotations

import json
import logging
from uuid import UUID, uuid4

import pytest
from pydantic import SecretStr
from trademesh_keystore import DecryptionError, SealedSecret, new_master_key
from trademesh_testing.http import app_client
from trademesh_testing.tokens import bearer

from trademesh_execution.app import create_app
from trademesh_execution.config import Settings

pytestmark = pytest.mark.integration

API_KEY = "AKtestKEY1234567890abcdef"
SECRET = "s3cr3t-" + uuid4().hex  # unique per run: a match in the logs can only be a leak


def keyring(**keys: SecretStr) -> SecretStr:
    return SecretStr(json.dumps({k: v.get_secret_value() for k, v in keys.items()}))


async def test_exchange_credentials_are_sealed_masked_rotated_and_never_shown(
    settings: Settings, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    k1, k2 = new_master_key(), new_master_key()
    first = settings.model_copy(
        update={"keystore_keys": keyring(k1=k1), "keystore_current_key": "k1"}
    )
    user = uuid4()
    headers = bearer(user)
    bodies: list[str] = []
    app = create_app(first)
    async with app_client(app) as client:
        created = await client.post(
            "/api/v1/accounts",
            json={"name": "binance main", "venue": "binance", "api_key": API_KEY, "secret": SECRET},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        bodies.append(created.text)
        account = UUID(created.json()["account_id"])
        assert created.json()["api_key_masked"] == "AKte…ef"
        listed = await client.get("/api/v1/accounts", headers=headers)
        bodies.append(listed.text)
        assert [a["api_key_masked"] for a in listed.json()["items"]] == ["AKte…ef"]

        runtime = app.state.runtime
        row = await runtime.store.account(account)
        sealed = SealedSecret.from_json(row.credentials)
        assert sealed.key_id == "k1"
        assert SECRET not in row.credentials and API_KEY not in row.credentials
        opened = await runtime.credentials.open(account, "binance", row.credentials)
        assert (opened.api_key.get_secret_value(), opened.secret.get_secret_value()) == (
            API_KEY,
            SECRET,
        )
        # Bound to its account and exchange: the same record does not open for another.
        with pytest.raises(DecryptionError):
            await runtime.credentials.open(uuid4(), "binance", row.credentials)
        with pytest.raises(DecryptionError):
            await runtime.credentials.open(account, "kraken", row.credentials)
        before = row.credentials

    # Rotation: k2 becomes current, k1 stays readable until the records are rewrapped.
    second = settings.model_copy(
        update={"keystore_keys": keyring(k1=k1, k2=k2), "keystore_current_key": "k2"}
    )
    app = create_app(second)
    async with app_client(app) as client:
        refused = await client.post("/api/v1/keystore/rewrap", headers=headers)
        assert refused.status_code == 403
        done = await client.post("/api/v1/keystore/rewrap", headers=bearer(user, "admin"))
        assert done.json()["rewrapped"] >= 1
        row = await app.state.runtime.store.account(account)
        moved = SealedSecret.from_json(row.credentials)
        assert moved.key_id == "k2"
        old = SealedSecret.from_json(before)
        assert (moved.nonce, moved.ciphertext) == (old.nonce, old.ciphertext)  # secret untouched
        bodies.append(done.text)

    # With k1 gone, the rewrapped record still opens.
    third = settings.model_copy(
        update={"keystore_keys": keyring(k2=k2), "keystore_current_key": "k2"}
    )
    app = create_app(third)
    async with app_client(app):
        opened = await app.state.runtime.credentials.open(account, "binance", row.credentials)
        assert opened.secret.get_secret_value() == SECRET

    # Nowhere: not in a response, a log record, its arguments, or the process's output.
    logged = (
        "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
        + caplog.text
    )
    captured = capsys.readouterr()
    for text in (*bodies, logged, captured.out, captured.err):
        assert SECRET not in text
        assert k1.get_secret_value() not in text and k2.get_secret_value() not in text


async def test_bad_accounts_are_problems(settings: Settings) -> None:
    headers = bearer(uuid4())
    async with app_client(create_app(settings)) as client:  # no keystore configured
        no_keystore = await client.post(
            "/api/v1/accounts",
            json={"name": "x", "venue": "binance", "api_key": API_KEY, "secret": SECRET},
            headers=headers,
        )
        assert no_keystore.status_code == 503
        assert SECRET not in no_keystore.text
        for body in (
            {"name": "x", "venue": "paper", "api_key": API_KEY, "secret": SECRET},
            {"name": "x", "venue": "binance"},
            {"name": "x", "venue": "nosuchexchange", "api_key": API_KEY, "secret": SECRET},
        ):
            response = await client.post("/api/v1/accounts", json=body, headers=headers)
            assert response.status_code == 422, body
            assert response.headers["content-type"] == "application/problem+json"
            assert SECRET not in response.text
        paper = await client.post("/api/v1/accounts", json={"name": "p"}, headers=headers)
        account = paper.json()["account_id"]
        assert (
            await client.delete(f"/api/v1/accounts/{account}", headers=headers)
        ).status_code == 204
        assert (await client.get(f"/api/v1/accounts/{account}", headers=headers)).status_code == 404
