"""The request id: taken from the caller or made up, echoed on every answer, named by the JSON 500 and by
every log line written during the request (`core.request_context`). The other headers every answer carries
are `api.security_headers`'."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import forget_tracebacks, internal_error_response
from core.request_context import request_id_bound

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is a plain token: it is echoed in a header and written to the logs.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_for(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a new one."""
    given = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give every request an id (`request.state.request_id`, the `X-Request-ID` response header) and answer
    any exception no handler took with `{"detail": "Internal error", "request_id": ...}`.

    Starlette sends an `Exception` handler's response from its outermost middleware and then re-raises, and
    uvicorn closes a connection whose app raised: the client's next request on it fails. Answering here and
    not re-raising keeps the keep-alive connection usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id, turning an unexpected exception into a JSON 500."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        # Bound for the request: every line logged meanwhile names it, and the workflows it starts carry it.
        with request_id_bound(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                log.exception(
                    "unexpected error, request %s (%s %s)", request_id, scope["method"], scope["path"]
                )
                if response_started:
                    raise  # half an answer is out: only closing the connection can tell the client
                await internal_error_response(request_id)(scope, receive, send_with_id)
                forget_tracebacks(exc)  # logged and answered: nothing of the request waits for the collector
