"""The API's documentation pages work with no network but the API itself: Swagger UI at `/docs` and ReDoc at
`/redoc` load their scripts and styles from the app, in a real headless browser (Debian's chromium) that
cannot resolve any host but 127.0.0.1, so a page that still reached for a CDN would stay blank.

Skips when chromium is not installed, unless CI is set (then it fails): `make test` installs it as root.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn

from api.app import API_PREFIX, create_app
from core.settings import Settings
from tests.analytics.cdp import LOOPBACK_ONLY, Page, chromium_or_skip, headless_chromium
from tests.dedicated_postgres import free_port

# What the pages used to load, so the browser must fail to reach it for the tests to mean anything.
CDN_PROBE = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
# Every script, stylesheet and other resource the page asked for.
LOADED_URLS = """[
  ...[...document.querySelectorAll('script[src]')].map((e) => e.src),
  ...[...document.querySelectorAll('link[href]')].map((e) => e.href),
  ...performance.getEntriesByType('resource').map((e) => e.name),
]"""
# URLs the page's Content-Security-Policy kept the browser from fetching, recorded from the first script on.
RECORD_BLOCKED = """window.blockedByPolicy = [];
document.addEventListener('securitypolicyviolation', (e) => window.blockedByPolicy.push(
  {uri: e.blockedURI, directive: e.effectiveDirective}));"""
# Whether the CDN answers a request from inside the page (no CORS needed: an opaque answer is one).
CDN_REACHABLE = f"fetch({json.dumps(CDN_PROBE)}, {{mode: 'no-cors'}}).then(() => true, () => false)"
PRACTITIONERS = f"{API_PREFIX}/practitioners"
# The GET /practitioners operation's block in Swagger UI (paths are exact in `data-path`).
PRACTITIONERS_GET = f'.opblock-get:has(.opblock-summary-path[data-path="{PRACTITIONERS}"])'
LIVE_RESPONSE = f"{PRACTITIONERS_GET} .live-responses-table .response"  # what the server answered


@pytest.fixture(scope="module")
async def docs_server(settings: Settings, database_url: str) -> AsyncIterator[str]:
    """The API served by uvicorn on a free local port, for the module (its OpenAPI document is built once,
    on the first request, which takes a while); yields its base URL."""
    port = free_port()
    app = create_app(settings, database_url=database_url)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def text_of(selector: str) -> str:
    """JavaScript for the text of the element `selector` names (undefined while there is none)."""
    return f"document.querySelector({json.dumps(selector)})?.textContent"


async def click(page: Page, selector: str, within: float = 5) -> None:
    """Wait for the element `selector` names, then click it."""
    found = json.dumps(selector)
    await page.wait_for(f"document.querySelector({found}) !== null", within)
    await page.evaluate(f"document.querySelector({found}).click()")


async def open_docs(page: Page, url: str) -> None:
    """Open a documentation page, recording what its policy blocks (for `assert_everything_came_from`)."""
    await page.send("Page.addScriptToEvaluateOnNewDocument", source=RECORD_BLOCKED)
    await page.goto(url)


async def assert_everything_came_from(page: Page, base_url: str) -> None:
    """Every URL the page loaded is the app's (or was never fetched: blocked by the page's own policy), the
    policy refused nothing but remote images, and the CDN is out of the page's reach."""
    loaded = await page.evaluate(LOADED_URLS)
    refusals = await page.evaluate("window.blockedByPolicy")
    blocked = [refusal["uri"] for refusal in refusals]
    assert loaded, "the page loaded nothing"
    assert [url for url in loaded if not url.startswith(base_url + "/") and url not in blocked] == []
    # The page's own policy (`api.security_headers.docs_policy`) keeps out remote images (ReDoc's logo), and
    # nothing the page needs: no script, style, fetch or worker of its own was refused.
    assert [refusal for refusal in refusals if refusal["directive"] != "img-src"] == []
    assert await page.evaluate(CDN_REACHABLE, await_promise=True) is False, "the CDN is reachable"


async def test_swagger_ui_shows_the_operations_with_no_network(docs_server: str) -> None:
    chromium = chromium_or_skip()
    async with headless_chromium(chromium, LOOPBACK_ONLY) as page:
        await open_docs(page, docs_server + "/docs")
        await page.wait_for(
            f"document.querySelector('.opblock-summary-path[data-path=\"{API_PREFIX}/patients\"]') !== null",
            within=15,
        )
        assert await page.evaluate("document.querySelector('.btn.authorize') !== null")
        await assert_everything_came_from(page, docs_server)


async def test_swagger_ui_authorize_then_try_it_out_gets_200_with_the_bearer_token(
    docs_server: str, tenant_id: uuid.UUID, token_for: Callable[..., str]
) -> None:
    chromium = chromium_or_skip()
    token = token_for(tenant_id)
    async with headless_chromium(chromium, LOOPBACK_ONLY) as page:
        await open_docs(page, docs_server + "/docs")

        # Authorize: the bearer scheme's dialog, the token typed into its field, applied, closed.
        await click(page, ".btn.authorize", within=15)
        await page.wait_for("document.querySelector('#auth-bearer-value') !== null", within=5)
        await page.evaluate("document.querySelector('#auth-bearer-value').focus()")
        await page.send("Input.insertText", text=token)
        await click(page, ".modal-ux .btn.modal-btn.auth.authorize")
        await page.wait_for(f"{text_of('.modal-ux')}?.includes('Authorized')", 5)
        await click(page, ".modal-ux .btn-done")

        # Try it out: GET /practitioners from the page.
        await click(page, f"{PRACTITIONERS_GET} .opblock-summary-control")
        await click(page, f"{PRACTITIONERS_GET} .try-out__btn")
        await click(page, f"{PRACTITIONERS_GET} .execute")
        status = await page.wait_for(f"{text_of(LIVE_RESPONSE + ' .response-col_status')}?.trim()", 10)
        assert status == "200", await page.evaluate(text_of(LIVE_RESPONSE + " .response-col_description"))
        curl = await page.evaluate(text_of(f"{PRACTITIONERS_GET} .curl-command"))
        assert f"Authorization: Bearer {token}" in curl
        await assert_everything_came_from(page, docs_server)


async def test_redoc_renders_from_the_app_bundle_with_no_network(docs_server: str) -> None:
    chromium = chromium_or_skip()
    async with headless_chromium(chromium, LOOPBACK_ONLY) as page:
        await open_docs(page, docs_server + "/redoc")
        await page.wait_for(
            f"document.body.textContent.includes('PRM Service API') && "
            f"document.body.textContent.includes('{API_PREFIX}/patients')",
            within=15,
        )
        scripts = await page.evaluate("[...document.scripts].filter((s) => s.src).map((s) => s.src)")
        assert len(scripts) == 1 and scripts[0].startswith(docs_server + "/"), scripts
        await assert_everything_came_from(page, docs_server)
