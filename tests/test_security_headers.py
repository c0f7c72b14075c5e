"""The headers that keep a browser from misusing the API's answers (`api.security_headers`), and CORS only
where the Temporal UI needs it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from html.parser import HTMLParser

import httpx
import pytest

from api.app import API_PREFIX, create_app
from core.settings import Settings

PRACTITIONERS = f"{API_PREFIX}/practitioners"
TEMPORAL_UI = "http://localhost:8233"


def policy_of(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: [sources]}."""
    directives = [d.split() for d in response.headers["content-security-policy"].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


class InlineScripts(HTMLParser):
    """The text of every <script> without `src` (a different parser from the one the app hashes with)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.sources: list[str] = []
        self._inline: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and "src" not in dict(attrs):
            self._inline = []

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inline is not None:
            self.sources.append("".join(self._inline))
            self._inline = None


def inline_scripts(page: str) -> list[str]:
    parser = InlineScripts()
    parser.feed(page)
    return parser.sources


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def assert_framing_referrer_and_sniffing_refused(response: httpx.Response) -> None:
    policy = policy_of(response)
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers  # PRM_HSTS_SECONDS is 0 by default


async def test_an_api_answer_is_data_no_page_may_frame_or_run(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(PRACTITIONERS, headers=auth)

    assert response.status_code == 200
    assert_framing_referrer_and_sniffing_refused(response)
    assert policy_of(response)["default-src"] == ["'none'"]
    assert response.headers["cache-control"] == "no-store"


async def test_refusals_and_unknown_paths_carry_the_same_headers(client: httpx.AsyncClient) -> None:
    refused = await client.get(PRACTITIONERS)
    unknown = await client.get("/no-such-page")

    assert (refused.status_code, unknown.status_code) == (401, 404)
    for response in (refused, unknown):
        assert_framing_referrer_and_sniffing_refused(response)
        assert policy_of(response)["default-src"] == ["'none'"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_a_docs_page_allows_its_own_scripts_and_inline_ones_only_by_hash(
    client: httpx.AsyncClient, path: str
) -> None:
    """If the page's inline scripts changed (a FastAPI upgrade, a new Swagger UI parameter) and the policy did
    not follow, the browser would refuse them and show a blank page: each must be allowed by its hash."""
    response = await client.get(path)

    assert response.status_code == 200
    assert_framing_referrer_and_sniffing_refused(response)
    policy = policy_of(response)
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert "'self'" in scripts
    inline = inline_scripts(response.text)
    assert [sha256_source(script) for script in inline if sha256_source(script) not in scripts] == []
    assert len(scripts) == 1 + len(inline)  # nothing allowed beyond the app's files and these scripts
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"]


async def test_swagger_ui_has_an_inline_script_for_the_policy_to_allow(client: httpx.AsyncClient) -> None:
    """What makes the test above bite: Swagger UI is started by an inline script."""
    page = (await client.get("/docs")).text
    assert any("SwaggerUIBundle(" in script for script in inline_scripts(page))


async def test_the_docs_assets_carry_the_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs-assets/swagger-ui-bundle.js")

    assert response.status_code == 200
    assert_framing_referrer_and_sniffing_refused(response)


async def test_hsts_is_sent_when_tls_terminates_in_front(settings: Settings, database_url: str) -> None:
    behind_tls = settings.model_copy(update={"hsts_seconds": 31536000})
    application = create_app(behind_tls, database_url=database_url)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            health, docs = await c.get("/health"), await c.get("/docs")

    assert health.headers["strict-transport-security"] == "max-age=31536000"
    assert docs.headers["strict-transport-security"] == "max-age=31536000"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_the_temporal_ui_origin_gets_cors_on_the_codec_and_not_on_the_api(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, headers_for: Callable[..., dict[str, str]]
) -> None:
    on_codec = await client.options("/codec/decode", headers=preflight(TEMPORAL_UI))
    on_api = await client.options(PRACTITIONERS, headers=preflight(TEMPORAL_UI))
    read = await client.get(PRACTITIONERS, headers={"Origin": TEMPORAL_UI, **headers_for(tenant_id)})

    assert on_codec.headers.get("access-control-allow-origin") == TEMPORAL_UI
    assert read.status_code == 200
    assert [h for h in (*on_api.headers, *read.headers) if h.lower().startswith("access-control-")] == []
