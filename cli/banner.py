"""What `prm run` prints once the stack answers: the URLs, the tenant and a ready-to-use token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cli.demo import DemoHighlights
from core.settings import Settings


@dataclass
class Ready:
    """What the banner shows once everything answers."""

    database: str
    tenant_id: uuid.UUID | None
    tenant_name: str | None
    seeded_now: bool
    token: str | None
    highlights: DemoHighlights | None = None


def api_base_url(settings: Settings, *, for_connecting: bool = False) -> str:
    """The API's base URL: `localhost` for people to click, an address that answers for probes."""
    host = settings.api_host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - read, not bound
        host = "127.0.0.1" if for_connecting else "localhost"
    elif host == "127.0.0.1" and not for_connecting:
        host = "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def render_banner(ready: Ready, settings: Settings, temporal_log: Path | None) -> str:
    """The URLs and the token, for a human to copy."""
    api = api_base_url(settings)
    if settings.temporal_address:
        temporal = f"external service at {settings.temporal_address} (its UI is not started here)"
    else:
        temporal = f"http://localhost:{settings.temporal_ui_port}"
    logs = "the worker and the API log to this terminal"
    if temporal_log is not None:
        logs += f"; Temporal to {temporal_log}"
    lines = [
        "",
        "PRM is running.",
        "",
        f"  API docs     {api}/docs",
        f"  Temporal UI  {temporal}",
        f"  Database     {ready.database}",
        f"  Logs         {logs}",
        "",
    ]
    if ready.tenant_id is None:
        lines += ["  No active tenant: create one with `prm tenant create --name NAME`.", ""]
    else:
        seeded = "seeded just now" if ready.seeded_now else "kept from an earlier run"
        lines += [f"  Tenant       {ready.tenant_name} (id {ready.tenant_id}), {seeded}"]
    if ready.tenant_id is not None and ready.token is None:
        lines += [
            f"  No token: PRM_JWT_ALGORITHM is {settings.jwt_algorithm}; development tokens are HS* only,",
            "  so use one from your identity provider.",
            "",
        ]
    elif ready.token is not None:
        hours = settings.dev_token_ttl_minutes / 60
        lines += [
            f"  Admin bearer token for it, valid {hours:g} h:",
            "",
            f"    export TOKEN={ready.token}",
        ]
        if ready.highlights is None:
            lines += [f'    curl -H "Authorization: Bearer $TOKEN" {api}/api/v1/prm/practitioners', ""]
        else:
            lines += ["", *_first_steps(ready.highlights, settings, api)]
    lines += ["Press Ctrl-C to stop everything.", ""]
    return "\n".join(lines)


def _first_steps(demo: DemoHighlights, settings: Settings, api: str) -> list[str]:
    """What to try first in the demo clinic: ids only (the banner goes to the terminal, never PHI)."""
    auth = 'curl -H "Authorization: Bearer $TOKEN"'
    body = f"-H 'Content-Type: application/json' -d '{{\"order_index\": {demo.waiting_stage}}}'"
    base = f"{api}/api/v1/prm"
    lines = [
        "  Try first:",
        "",
        "    # today's appointments",
        f"    {auth} {base}/appointments/today",
        "    # one demo patient's 360 view: appointments, messages, journeys, tickets",
        f"    {auth} {base}/patients/{demo.patient_id}/360",
    ]
    if demo.instance_id is not None:
        lines += [
            "    # advance their onboarding journey, waiting on a coordinator (409 until it gets there)",
            f"    {auth} {body} \\",
            f"      {base}/journeys/instances/{demo.instance_id}/advance",
        ]
    else:
        lines += [
            "    # the running journey instances",
            f"    {auth} '{base}/journeys/instances?status=active'",
        ]
    query = f'PrmPatientId = "{demo.patient_id}"'
    lines += ["", f"  Their workflows in the Temporal UI: filter by  {query}"]
    if not settings.temporal_address:
        namespace = quote(settings.temporal_namespace, safe="")
        url = f"http://localhost:{settings.temporal_ui_port}/namespaces/{namespace}/workflows"
        lines += [f"    {url}?query={quote(query, safe='')}"]
    return [*lines, ""]
