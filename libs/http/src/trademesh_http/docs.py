"""/docs (Swagger UI) and /redoc (ReDoc) on assets the app serves itself, so they work offline.

The scripts, styles and icon are the copies the fastapi-offline package ships (swagger-ui-dist 5
and ReDoc 2's standalone bundle, the files FastAPI's pages load from a CDN by default), served
under ASSETS_PATH; the pages are FastAPI's own, pointed at them. Each page carries a
Content-Security-Policy that lets the browser load nothing from anywhere else, nor run a script
other than those files and the page's own init script (allowed by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

#: Where the pages' scripts, styles and icon are served (public wherever /docs is).
ASSETS_PATH = "/docs/assets"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
_PACKAGE_ASSETS = ("fastapi_offline", "static")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# Styles may be inline: ReDoc (styled-components) writes its own <style> elements. Images may be
# data: URIs (Swagger UI's icons); ReDoc's search runs in a worker made from a blob.
_POLICY = (
    "default-src 'none'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def serve_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """/docs and /redoc reading the document at `openapi_url`, and their assets at ASSETS_PATH.

    URLs are made under the request's root_path, as FastAPI's own pages make them (a proxy that
    serves the app under a prefix)."""
    assets = StaticFiles(packages=[_PACKAGE_ASSETS])

    # A route rather than a mount, so that metrics and spans name it (a mount's requests would
    # count as unmatched); StaticFiles still answers: types, ETag, 304, no path outside the folder.
    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str, request: Request) -> Response:
        return await assets.get_response(name, request.scope)

    def under_root(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + path

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url=under_root(request, openapi_url),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=under_root(request, f"{ASSETS_PATH}/{SWAGGER_JS}"),
                swagger_css_url=under_root(request, f"{ASSETS_PATH}/{SWAGGER_CSS}"),
                swagger_favicon_url=under_root(request, f"{ASSETS_PATH}/{FAVICON}"),
                # Swagger UI would show a badge image from swagger.io's validator, which is
                # sent the document's URL.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url=under_root(request, openapi_url),
                title=f"{app.title} - ReDoc",
                redoc_js_url=under_root(request, f"{ASSETS_PATH}/{REDOC_JS}"),
                redoc_favicon_url=under_root(request, f"{ASSETS_PATH}/{FAVICON}"),
                with_google_fonts=False,
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    """`page` with a Content-Security-Policy allowing its inline scripts by their hashes."""
    html = bytes(page.body).decode()
    digests = (hashlib.sha256(s.encode()).digest() for s in _INLINE_SCRIPT.findall(html))
    hashes = "".join(f" 'sha256-{base64.b64encode(d).decode()}'" for d in digests)
    page.headers["Content-Security-Policy"] = _POLICY.format(scripts=hashes)
    return page
