"""/docs and /redoc with no network: every script, style and icon they name is the app's own and
served with its type, and their policy lets a browser load nothing from anywhere else."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from trademesh_http import create_http_app
from trademesh_http.docs import ASSETS_PATH

from .conftest import add_demo_routes, make_client

pytestmark = pytest.mark.unit

PAGES = ("/docs", "/redoc")


class Linked(HTMLParser):
    """The URLs a page makes the browser load: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for attribute in ("src", "href"):
            if named.get(attribute):
                self.urls.append(str(named[attribute]))
        if tag == "script" and not named.get("src"):
            self._in_inline_script = True
            self.inline_scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def linked(html: str) -> Linked:
    parser = Linked()
    parser.feed(html)
    parser.close()
    return parser


def policy(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy, by directive."""
    directives = response.headers["content-security-policy"].split(";")
    return {d.split()[0]: d.split()[1:] for d in directives if d.strip()}


async def made_document() -> dict[str, object]:
    return {"openapi": "3.1.0", "info": {"title": "made", "version": "1"}, "paths": {}}


@pytest.fixture(params=["own document", "document source"])
def docs_app(request: pytest.FixtureRequest, service: str) -> FastAPI:
    """A service's app (its own document), and one whose document comes from a source (the
    gateway's kind): both serve the same pages."""
    if request.param == "own document":
        return add_demo_routes(create_http_app(service=service))
    return create_http_app(service=service, openapi=made_document)


@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_name_only_urls_of_the_app_itself(docs_app: FastAPI, page: str) -> None:
    async with make_client(docs_app) as client:
        answer = await client.get(page)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    urls = linked(answer.text).urls
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        assert url.startswith(ASSETS_PATH + "/"), url
    assert "cdn" not in answer.text and "googleapis" not in answer.text
    assert "'/openapi.json'" in answer.text or 'spec-url="/openapi.json"' in answer.text


@pytest.mark.parametrize("page", PAGES)
async def test_docs_assets_are_served_with_their_type_without_credentials(
    docs_app: FastAPI, page: str
) -> None:
    async with make_client(docs_app) as client:
        urls = linked((await client.get(page)).text).urls
        assets = {url: await client.get(url) for url in urls}

    for url, asset in assets.items():
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"]
        if url.endswith(".js"):
            assert "javascript" in kind, (url, kind)
            assert len(asset.content) > 500_000, url  # the whole bundle, not a stub
        elif url.endswith(".css"):
            assert kind.startswith("text/css"), (url, kind)
            assert len(asset.content) > 50_000, url
        else:
            assert kind.startswith("image/"), (url, kind)


async def test_the_swagger_ui_bundle_defines_what_the_page_calls(app: FastAPI) -> None:
    async with make_client(app) as client:
        page = (await client.get("/docs")).text
        (script,) = [url for url in linked(page).urls if url.endswith(".js")]
        bundle = (await client.get(script)).text

    assert "SwaggerUIBundle(" in page
    assert "exports.SwaggerUIBundle=" in bundle  # the global the page's init script calls
    assert "SwaggerUIBundle.presets.apis" in page and "deepLinking" in bundle


async def test_the_redoc_bundle_starts_itself_on_the_pages_element(app: FastAPI) -> None:
    async with make_client(app) as client:
        page = (await client.get("/redoc")).text
        (script,) = [url for url in linked(page).urls if url.endswith(".js")]
        bundle = (await client.get(script)).text

    assert '<redoc spec-url="/openapi.json">' in page
    assert 'getAttribute("spec-url")' in bundle  # ReDoc's own start on a <redoc> element


@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_let_the_browser_load_nothing_from_elsewhere(
    app: FastAPI, page: str
) -> None:
    async with make_client(app) as client:
        answer = await client.get(page)

    directives = policy(answer)
    assert directives["default-src"] == ["'none'"]
    for directive in ("connect-src", "img-src", "style-src", "font-src"):
        assert all(not re.match(r"https?:", source) for source in directives[directive])
    # The page's own init script runs by its hash alone: no script may be injected inline.
    inline = linked(answer.text).inline_scripts
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline
    ]
    assert directives["script-src"] == ["'self'", *hashes]
    assert len(inline) == (1 if page == "/docs" else 0)
    assert directives["frame-ancestors"] == ["'none'"]


async def test_docs_behind_a_proxys_prefix_name_their_assets_under_it(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/svc")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        docs = await client.get("/docs")

    urls = linked(docs.text).urls
    assert urls and all(url.startswith("/svc" + ASSETS_PATH + "/") for url in urls)
    assert "'/svc/openapi.json'" in docs.text


async def test_docs_assets_beyond_the_shipped_files_are_not_found(
    client: httpx.AsyncClient,
) -> None:
    # fastapi_offline/core.py sits beside the assets' folder.
    for name in ("..%2Fcore.py", "%2E%2E%2Fcore.py", "", "nothing.js"):
        answer = await client.get(f"{ASSETS_PATH}/{name}")
        assert answer.status_code == 404, name
        assert answer.headers["content-type"] == "application/problem+json", name
