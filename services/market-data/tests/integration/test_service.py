"""The market-data service on the real broker and the real Postgres: /health, /ready, /metrics, /about."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from trademesh_testing.contract import ServiceContract

from trademesh_market_data.app import create_app
from trademesh_market_data.config import Settings

pytestmark = pytest.mark.integration


class TestService(ServiceContract):
    """/health, /ready, /metrics and the about route (trademesh_testing.contract)."""

    @pytest.fixture
    def private_app(self, private_infra: Any) -> FastAPI:
        return create_app(private_infra.settings(Settings, ready_timeout_s=1.0))
