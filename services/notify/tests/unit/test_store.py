"""The store's pure parts: the NOTIFY channel's name."""

from __future__ import annotations

import pytest

from trademesh_notify.store import wake_channel

pytestmark = pytest.mark.unit


def test_the_wake_channel_is_the_schemas_and_fits_postgres_name_limit() -> None:
    assert wake_channel("notify") == "trademesh_deliveries_notify"
    assert wake_channel("t_1") != wake_channel("t_2")
    assert len(wake_channel("t" * 63)) == 63
