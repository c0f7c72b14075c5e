"""Hostile input stopped at the door, before any handler or the database sees it.

- A body larger than `PRM_MAX_BODY_BYTES` is 413 (announced by Content-Length or not: the body is read up
  to the limit and no further).
- A NUL character anywhere in the query string or a body is 422: PostgreSQL's text cannot hold one, and
  letting it through turns into a 500 at the first write.
- A JSON body must be JSON as RFC 8259 defines it: `NaN` and `Infinity` are refused (Python's parser
  accepts them, PostgreSQL's JSONB does not), and so is nesting deeper than `MAX_JSON_DEPTH`; so are bytes
  that are not text in a JSON encoding (UTF-8, or UTF-16/32), which FastAPI would answer with a bare 400.
Every refusal is `{"detail": ...}` (a 422's as the one-item list every 422 has) and names the rule, never
the submitted value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import renderer_for, unprocessable_body

MAX_JSON_DEPTH = 32
_TOO_DEEP = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_QUERY_NUL = re.compile(rb"%00|\x00")
_FORM_NUL = re.compile(rb"%00|\x00")


class _Refused(Exception):
    def __init__(self, status: int, detail: str, loc: str = "body") -> None:
        super().__init__(detail)
        self.status, self.detail, self.loc = status, detail, loc

    def response(self, scope: Scope) -> JSONResponse:
        """The refusal as the API renders every error of its status (a 422 as a one-item list), or as the
        paths under a prefix render theirs (FHIR's OperationOutcome)."""
        app = scope.get("app")
        render = renderer_for(app, scope.get("path", "")) if app is not None else None
        if render is not None:
            return render(self.status, self.detail, {})
        body = unprocessable_body(self.detail, (self.loc,)) if self.status == 422 else {"detail": self.detail}
        return JSONResponse(body, status_code=self.status)


def _depth(value: Any, limit: int) -> bool:
    """True when `value` nests deeper than `limit` (iteratively: a hostile body cannot blow the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _no_constants(name: str) -> Any:
    raise _Refused(422, f"{name} is not a JSON number: send a finite number or null.")


def _plainly_within_rules(body: bytes) -> bool:
    """Whether a JSON body obviously keeps the rules without parsing it (the usual body, found with a few
    byte scans in C): ASCII text (so UTF-8), no `NaN` or `Infinity` anywhere, and fewer brackets in all than
    the depth limit (inside strings too, so it errs on the side of parsing)."""
    return (
        body.isascii()
        and b"NaN" not in body
        and b"Infinity" not in body
        and body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH
    )


def check_body(body: bytes, content_type: str) -> None:
    """Refuse a body with a NUL character, or JSON with NaN/Infinity or nesting past the limit."""
    if b"\x00" in body or _ESCAPED_NUL.search(body):
        raise _Refused(422, "NUL characters are not accepted in a request.")
    if "json" in content_type and body.strip():
        if _plainly_within_rules(body):
            return  # the endpoint parses it (once); nothing in it can break a rule here
        try:
            parsed = json.loads(body, parse_constant=_no_constants)
        except _Refused:
            raise
        except UnicodeDecodeError as exc:
            raise _Refused(422, "The JSON body is not UTF-8 text.") from exc
        except RecursionError as exc:  # only nesting ~1,000 deep exhausts the parser: far past the limit
            raise _Refused(422, _TOO_DEEP) from exc
        except ValueError:
            return  # not JSON at all: the endpoint's own validation answers 422 with its location
        if _depth(parsed, MAX_JSON_DEPTH):
            raise _Refused(422, _TOO_DEEP)
    elif "x-www-form-urlencoded" in content_type and _FORM_NUL.search(body):
        raise _Refused(422, "NUL characters are not accepted in a request.")


class InputGuardMiddleware:
    """Reads each request body (up to the limit) before the app does, and refuses what no endpoint takes."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, router: Router | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.router = router

    def _routed(self, scope: Scope) -> bool:
        """Whether a route takes this method on this path: if none does, the router's 404 or 405 is the
        answer, whatever the request holds."""
        if self.router is None:
            return True
        return any(route.matches(scope)[0] == Match.FULL for route in self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a sane request on (its body replayed); answer an insane one here."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The routes are matched only for a request about to be refused (the rare case), not for every one.
        try:
            query_nul = _QUERY_NUL.search(scope.get("query_string", b"")) or "\x00" in scope.get("path", "")
            if query_nul and self._routed(scope):
                raise _Refused(422, "NUL characters are not accepted in a request.", loc="query")
            headers = Headers(scope=scope)
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _Refused(413, f"The request body is larger than {self.max_body_bytes} bytes.")
            body = await self._read_body(receive)
            try:
                check_body(body, headers.get("content-type", "").lower())
            except _Refused:
                if self._routed(scope):
                    raise
        except _Refused as refused:
            await refused.response(scope)(scope, receive, send)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then the client's disconnect, as the app would see it

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refused(413, f"The request body is larger than {self.max_body_bytes} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
