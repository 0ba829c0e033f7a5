"""The gateway's cache of API keys' access tokens: what it keeps, and what a revocation drops."""

from __future__ import annotations

import itertools
import time
from uuid import uuid4

import httpx
import pytest
from trademesh_http.revocations import RevokedKey, RevokedSessions

from trademesh_gateway.proxy import ApiKeys, key_id_of

pytestmark = pytest.mark.unit


def _key(n: int) -> str:
    return f"tmk_{n:016x}_{'s' * 43}"


@pytest.fixture
def api_keys() -> ApiKeys:
    """A cache of two entries whose auth stand-in hands out numbered tokens."""
    counter = itertools.count(1)

    def exchange(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": f"t{next(counter)}", "expires_in": 600})

    auth = httpx.AsyncClient(transport=httpx.MockTransport(exchange), base_url="http://auth")
    return ApiKeys(auth, margin_s=30, size=2)


async def _token(api_keys: ApiKeys, key: str) -> str:
    return await api_keys.access_token(key, ApiKeys.digest(key))


def test_a_keys_id_is_its_public_part() -> None:
    assert key_id_of(_key(7)) == f"{7:016x}"
    assert key_id_of("tmk_") is None and key_id_of("nope_a_b") is None


async def test_a_token_is_exchanged_once_then_cached(api_keys: ApiKeys) -> None:
    assert [await _token(api_keys, _key(1)) for _ in range(3)] == ["t1", "t1", "t1"]
    assert api_keys.exchanges == 1


async def test_a_revoked_key_loses_its_cached_token_and_only_it(api_keys: ApiKeys) -> None:
    await _token(api_keys, _key(1))
    await _token(api_keys, _key(2))
    api_keys.forget(RevokedKey(f"{1:016x}", time.time()))
    assert len(api_keys) == 1
    assert await _token(api_keys, _key(2)) == "t2"  # still cached
    assert await _token(api_keys, _key(1)) == "t3"  # exchanged again (auth decides)


async def test_ended_sessions_drop_every_cached_token_of_that_user(api_keys: ApiKeys) -> None:
    alice, bob = uuid4(), uuid4()
    for n, user in ((1, alice), (2, bob)):
        await _token(api_keys, _key(n))
        api_keys.verified(ApiKeys.digest(_key(n)), user)
    api_keys.forget(RevokedSessions(alice, 2, time.time()))
    assert len(api_keys) == 1
    assert await _token(api_keys, _key(2)) == "t2"


async def test_the_oldest_entry_goes_when_full_and_its_revocation_finds_nothing(
    api_keys: ApiKeys,
) -> None:
    for n in (1, 2, 3):
        await _token(api_keys, _key(n))
    assert len(api_keys) == 2
    api_keys.forget(RevokedKey(f"{1:016x}", time.time()))  # evicted already: nothing to drop
    assert len(api_keys) == 2
    api_keys.forget(RevokedKey(f"{3:016x}", time.time()))
    assert len(api_keys) == 1
