"""The market-data service's event subscribers: none, as it is where market data enters the platform."""

from __future__ import annotations

from trademesh_bus import Bus

from trademesh_market_data.config import Settings
from trademesh_market_data.engine import CONSUMES


def register_handlers(bus: Bus, settings: Settings) -> None:
    """Subscribe the service's consumers. market-data consumes no topic (CONSUMES is empty and a
    unit test keeps it equal to pyproject's contract), so nothing is subscribed; the function
    stays so that every service wires its subscribers in the same place."""
    if CONSUMES:
        raise RuntimeError(f"{settings.service_name} declares {CONSUMES} but handles none")
