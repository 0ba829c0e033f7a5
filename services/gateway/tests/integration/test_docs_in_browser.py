"""The gateway's /docs and /redoc rendered by a real browser: Debian's chromium, driven by
Playwright, on the gateway served on loopback. Swagger UI and ReDoc draw the route table's
operations from what the gateway serves itself, and the browser asks nothing of anywhere else."""

from __future__ import annotations

import os
import shutil
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import ConsoleMessage, Page, Request, async_playwright
from trademesh_testing.http import served

from trademesh_gateway.engine import ROUTES

# Debian's chromium (what `make deploy-tools` installs), or the Google Chrome that GitHub's Ubuntu
# runners ship (they run as no root, so make cannot apt-get there); never a browser Playwright
# would download. Without one the test skips (before the engines start), except under `make
# test` (TRADEMESH_REQUIRE_TOOLS=1), which installs it first: there it fails, so that the check
# cannot silently stop running.
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")
NO_CHROMIUM = (
    "Debian's chromium is not installed, so the API docs were not rendered in a browser "
    "(`make deploy-tools` installs it where apt-get runs as root)"
)
REQUIRED = os.environ.get("TRADEMESH_REQUIRE_TOOLS") == "1"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None and not REQUIRED, reason=NO_CHROMIUM),
]

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
RENDER_TIMEOUT_MS = 30_000
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class Watched:
    """What a page asked for, what the browser refused to fetch by the page's policy, and the
    errors the page reported (a policy's refusal is one)."""

    def __init__(self, page: Page) -> None:
        self.requested: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _request(self, request: Request) -> None:
        self.requested.append(request.url)

    def _failed(self, request: Request) -> None:
        if request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP"):  # Playwright's name, Chrome's
            self.refused.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


def operations(document: dict[str, Any]) -> int:
    return sum(
        1 for methods in document["paths"].values() for method in methods if method in METHODS
    )


async def test_swagger_ui_and_redoc_render_the_gateways_operations_offline(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    if CHROMIUM is None:
        pytest.fail(NO_CHROMIUM)
    expected = operations((await client.get("/openapi.json")).json())
    orders = next(r for r in ROUTES if r.method == "GET" and r.path == "/orders")
    async with served(app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            watched = Watched(page)

            await page.goto(f"{url}/docs")
            # Swagger UI draws one block per operation, its path in a data-path attribute.
            drawn = page.locator('.opblock-summary-path[data-path="/api/v1/orders"]')
            await drawn.first.wait_for(timeout=RENDER_TIMEOUT_MS)
            swagger_blocks = await page.locator(".opblock").count()

            await page.goto(f"{url}/redoc")
            # ReDoc heads each operation's section with its summary.
            heading = page.locator("h2", has_text=orders.summary)
            await heading.first.wait_for(timeout=RENDER_TIMEOUT_MS)
            redoc_headings = set(await page.locator("h2").all_inner_texts())
        finally:
            await browser.close()

    assert swagger_blocks == expected
    assert {route.summary for route in ROUTES} <= redoc_headings
    assert f"{url}/docs/assets/swagger-ui-bundle.js" in watched.requested
    assert f"{url}/docs/assets/redoc.standalone.js" in watched.requested
    # Nothing reached anywhere else: ReDoc's sidebar always asks for Redocly's logo from its CDN
    # (and hides it when it does not load); the docs' policy refuses it before it is sent.
    elsewhere = {r for r in watched.requested if not r.startswith((url, f"blob:{url}"))}
    assert elsewhere <= set(watched.refused)
    assert elsewhere <= {REDOCLY_LOGO}
    errors = [e for e in watched.errors if not any(f"'{r}'" in e for r in watched.refused)]
    assert errors == []
