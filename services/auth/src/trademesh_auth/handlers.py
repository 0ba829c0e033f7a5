"""The auth service's event subscribers: none. Auth consumes no topic; it produces
auth.events.v1 through its outbox (users.py)."""

from __future__ import annotations

from trademesh_bus import Bus

from trademesh_auth.engine import CONSUMES


def register_handlers(bus: Bus) -> None:
    """Nothing to subscribe to (kept so that every service has the same shape)."""
    assert CONSUMES == (), "auth consumes no topic"
    del bus
