"""server(): a uvicorn server that leaves logging alone and runs the lifespan."""

from __future__ import annotations

import pytest
import uvicorn
from fastapi import FastAPI
from trademesh_http.server import server

pytestmark = pytest.mark.unit


def test_server_config_keeps_logging_and_runs_lifespan() -> None:
    app = FastAPI()

    built = server(app, "127.0.0.1", 8123)

    assert isinstance(built, uvicorn.Server)
    assert built.config.app is app
    assert built.config.host == "127.0.0.1"
    assert built.config.port == 8123
    assert built.config.log_config is None
    assert built.config.access_log is False
    assert built.config.lifespan == "on"


def test_server_runs_on_uvloop_where_installed() -> None:
    built = server(FastAPI(), "127.0.0.1", 8123)

    factory = built.config.get_loop_factory()

    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
