"""The market-data service's event subscribers: none, as it is where market data enters the platform."""

from __future__ import annotations

from trademesh_bus import Bus
from trademesh_service import service_manifest

from trademesh_market_data.config import Settings


def register_handlers(bus: Bus, settings: Settings) -> None:
    """Subscribe the service's consumers. market-data consumes no topic (its manifest declares
    none), so nothing is subscribed; the function
    stays so that every service wires its subscribers in the same place."""
    if consumes := service_manifest(__name__).consumes:
        raise RuntimeError(f"{settings.service_name} declares {consumes} but handles none")
