"""The API's documentation pages, Swagger UI and ReDoc, with their scripts and styles served by the app.

FastAPI's own pages load those from a public CDN (unpinned, with no integrity hashes), so they stay blank
without internet. The `fastapi-offline` wheel ships the swagger-ui-dist and Redoc bundles (we use its files,
not its `FastAPIOffline` factory, which builds the app itself and drops `swagger_ui_init_oauth`); the pages
here are FastAPI's, pointed at those files, at the same URLs and with the same settings (`openapi_url`,
`swagger_ui_parameters`, `swagger_ui_init_oauth`). FastAPI's OAuth2 redirect page loads nothing and stays.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from api.security_headers import docs_policy

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"


def serve_docs_offline(app: FastAPI) -> None:
    """Serve the pages at `app.docs_url` and `app.redoc_url` from assets the app ships, not from a CDN."""
    if not app.openapi_url:
        return
    pages = {url: page for url, page in ((app.docs_url, swagger_ui), (app.redoc_url, redoc)) if url}
    # FastAPI adds its pages while the app is built; they are taken out rather than shadowed, and loudly
    # if a FastAPI release adds them some other way.
    fastapi_pages = [r for r in app.router.routes if type(r) is Route and r.path in pages]
    if len(fastapi_pages) != len(pages):
        raise RuntimeError(f"expected FastAPI's pages at {sorted(pages)}, found {fastapi_pages}")
    for route in fastapi_pages:
        app.router.routes.remove(route)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    for url, page in pages.items():
        app.add_route(url, page, include_in_schema=False)


async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the API from the browser, after "Authorize" with a bearer token."""
    app: FastAPI = request.app
    root = _root_path(request)
    redirect_url = app.swagger_ui_oauth2_redirect_url
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=f"{root}{redirect_url}" if redirect_url else None,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )
    return with_docs_policy(page)


async def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the API reference on one page."""
    app: FastAPI = request.app
    root = _root_path(request)
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,  # fonts from Google's CDN: the page uses the browser's own
    )
    # The bundle shows Redocly's logo from their CDN (and hides it when it fails to load): the policy's
    # `img-src 'self' data:` keeps it from being fetched.
    return with_docs_policy(page)


def with_docs_policy(page: HTMLResponse) -> HTMLResponse:
    """`page` with the policy its own HTML needs, hashed from that HTML: it follows any change to the page
    (a FastAPI upgrade, a Swagger UI parameter, a proxy's root path)."""
    page.headers["Content-Security-Policy"] = docs_policy(bytes(page.body).decode())
    return page


def _root_path(request: Request) -> str:
    """The prefix a proxy serves the app under, read as FastAPI's own pages read it."""
    return str(request.scope.get("root_path", "")).rstrip("/")
