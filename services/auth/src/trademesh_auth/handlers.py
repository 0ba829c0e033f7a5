"""The auth service's event subscribers: none. Auth consumes no topic; it produces
auth.events.v1 through its outbox (users.py)."""

from __future__ import annotations

from trademesh_bus import Bus
from trademesh_service import service_manifest


def register_handlers(bus: Bus) -> None:
    """Nothing to subscribe to (kept so that every service has the same shape)."""
    assert service_manifest(__name__).consumes == (), "auth consumes no topic"
    del bus
