"""Legacy paths that still answer: every answer under one says it is deprecated (RFC 9745 `Deprecation`,
the moment it was) and where its successor is (RFC 8288 `Link` with `rel="successor-version"`), whatever
its status."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DeprecatedPrefixMiddleware:
    """Adds `Deprecation` and `Link` to each answer under `prefix`, the successor being the same path
    under `successor`."""

    def __init__(self, app: ASGIApp, *, prefix: str, successor: str, since: datetime) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.successor = successor.rstrip("/")
        self.deprecation = f"@{int(since.timestamp())}"  # an RFC 9651 date: seconds since 1970

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; mark the answer when the path is under the deprecated prefix."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        # A header is Latin-1: the path goes in percent-encoded, as a URL is written.
        successor = quote(self.successor + path[len(self.prefix) :], safe="/:@!$&'()*+,;=-._~")

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Deprecation"] = self.deprecation
                headers.append("Link", f'<{successor}>; rel="successor-version"')
            await send(message)

        await self.app(scope, receive, send_marked)
