"""The reference's `EventSource` example in a real headless browser (Debian's chromium) against a running API:
a new appointment made through the API reaches the page as a fresh metrics snapshot within two seconds.

Skips when chromium is not installed, unless CI is set (then it fails): `make test` installs it as root.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi.responses import HTMLResponse

from api.app import create_app
from core.settings import Settings
from tests.analytics.cdp import chromium_or_skip, headless_chromium
from tests.analytics.conftest import ANALYTICS, Clinic

PAGE_PATH = "/test-pages/realtime.html"
PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; connect-src 'self'"
# The reference's client example, with the token as `access_token` (EventSource cannot send headers); each
# snapshot is kept in `window.snapshots` and listed in the page.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>PRM real-time metrics</title></head>
<body>
<ul id="metrics"></ul>
<script>
window.snapshots = [];
window.streamErrors = 0;
const eventSource = new EventSource('%(stream)s?tenant_id=%(tenant)s&access_token=%(token)s');
eventSource.onmessage = (event) => {
  const metrics = JSON.parse(event.data);
  console.log('New metrics:', metrics);
  window.snapshots.push(metrics);
  const item = document.createElement('li');
  item.textContent = metrics.appointments_today + ' appointments today';
  document.getElementById('metrics').appendChild(item);
};
eventSource.onerror = () => { window.streamErrors += 1; };
</script>
</body></html>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def browser_server(settings: Settings, database_url: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The API served by uvicorn on a free local port, plus a test-only page with the EventSource example
    (same origin as the API); yields the base URL and a dict the test fills with the page's parameters."""
    port = _free_port()
    app = create_app(settings, database_url=database_url)
    page_params: dict[str, str] = {}

    async def realtime_page() -> HTMLResponse:
        # A page on the API's origin gets the API's `default-src 'none'` unless it sends a policy of its own
        # (a clinic's dashboard would live on its own origin): this one runs its script and reads the stream.
        return HTMLResponse(
            PAGE % {"stream": f"{ANALYTICS}/realtime", **page_params},
            headers={"Content-Security-Policy": PAGE_POLICY},
        )

    app.add_api_route(PAGE_PATH, realtime_page, include_in_schema=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}", page_params
    srv.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_browser_event_source_sees_a_new_appointment_within_two_seconds(
    browser_server: tuple[str, dict[str, str]], clinic: Clinic, token_for: Callable
) -> None:
    chromium = chromium_or_skip()
    base_url, page_params = browser_server
    token = token_for(clinic.tenant_id)
    page_params.update(tenant=str(clinic.tenant_id), token=token)

    async with headless_chromium(chromium) as page:
        await page.goto(base_url + PAGE_PATH)
        first = await page.wait_for("window.snapshots[0]", within=10)
        assert first["tenant_id"] == str(clinic.tenant_id)
        assert first["appointments_today"] == 0

        start = datetime.now(UTC).replace(second=0, microsecond=0)  # today, in the tenant's (UTC) day
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            sent = time.monotonic()
            resp = await client.post(
                "/api/v1/prm/appointments",
                json={
                    "patient_id": str(clinic.patient_id),
                    "practitioner_id": str(clinic.practitioner_id),
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(minutes=30)).isoformat(),
                    "source_channel": "web",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 201, resp.text

        fresh = await page.wait_for(
            "window.snapshots.find((s) => s.appointments_today === 1)", within=2 - (time.monotonic() - sent)
        )
        elapsed = time.monotonic() - sent
        assert elapsed <= 2, f"the new snapshot took {elapsed:.2f} s"
        print(f"new snapshot in the page {elapsed:.2f} s after the appointment was sent")
        assert fresh["appointments_by_status"] == {"booked": 1}
        shown = await page.evaluate("document.getElementById('metrics').lastChild.textContent")
        assert shown == "1 appointments today"
        assert await page.evaluate("window.streamErrors") == 0, json.dumps(
            await page.evaluate("window.snapshots")
        )
