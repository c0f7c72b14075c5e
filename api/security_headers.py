"""The headers every answer carries to keep a browser from misusing it, and CORS where a browser needs it.

- `Content-Security-Policy`: an API answer is data, never a page: `default-src 'none'`, and no one may frame
  it (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for browsers that predate CSP). The documentation
  pages (`api.docs`) send their own policy, `docs_policy`: scripts from the app and the page's own inline
  scripts by their hashes, never `'unsafe-inline'` scripts.
- `Referrer-Policy: no-referrer`: URLs carry patient ids; no page the docs link to learns them.
- `X-Content-Type-Options: nosniff`; `Cache-Control: no-store` on answers that can carry patient data.
- `Strict-Transport-Security` when `PRM_HSTS_SECONDS` says TLS terminates in front of the API.
- CORS (the Temporal UI's origins, `PRM_CORS_ORIGINS`) on the codec endpoints alone: the UI calls nothing
  else, and no other origin's page may read the API with a user's credentials.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Answers that can carry patient data or credentials (RFC 6749 5.1: a token answer is never cached).
NO_STORE_PREFIXES = ("/api/", "/codec/", "/fhir/", "/hl7/", "/oauth/")
# An inline <script> (one without `src`): what a CSP hash covers is exactly the text between the tags.
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def script_hash(source: str) -> str:
    """The CSP source expression that allows an inline script with exactly this text."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def docs_policy(page: str) -> str:
    """The policy of a documentation page (Swagger UI, ReDoc): its scripts and styles from the app, its own
    inline scripts by hash, fetches to the app alone (the OpenAPI document, "Try it out"), images from the
    app or inline (`data:`), ReDoc's search in a `blob:` worker, and still never framed."""
    inline = " ".join(script_hash(source) for source in _INLINE_SCRIPT.findall(page))
    return (
        f"default-src 'none'; script-src 'self' {inline}".rstrip()
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


class SecurityHeadersMiddleware:
    """Add the headers above to every HTTP answer; a header the route set itself (a docs page's policy)
    is kept."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}" if hsts_seconds else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the answer's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", API_POLICY)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if scope["path"].startswith(NO_STORE_PREFIXES):
                    headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", self.hsts)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CORSOnlyUnder:
    """Starlette's CORSMiddleware for the paths under `prefix`; every other path answers as if no origin
    were allowed (no `Access-Control-*` headers, preflights included)."""

    def __init__(
        self, app: ASGIApp, *, prefix: str, origins: list[str], methods: list[str], headers: list[str]
    ):
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.cors = CORSMiddleware(app, allow_origins=origins, allow_methods=methods, allow_headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """CORS for `prefix` and below, nothing elsewhere."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == self.prefix or path.startswith(self.prefix + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
