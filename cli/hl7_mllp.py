"""`prm hl7 mllp`: an MLLP listener in front of `POST /hl7/v2`, for EHRs (interface engines) that speak HL7 v2
over TCP with MLLP framing rather than over HTTP.

Each MLLP block received is forwarded as it came to `POST /hl7/v2` with an integration token (client
credentials, `hl7` scope, fetched at `/oauth/token` and renewed before it expires or when refused), and the
ACK the API answers is written back in an MLLP block. The listener holds no state of its own: it can be
restarted, or several run behind a TCP load balancer. When the API cannot be reached the sender gets an AR
(original mode: try again later) and may resend; a resend with the same MSH-10 is applied once.
Nothing of a message is logged, only counts and ACK codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx
from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from domain.hl7.messages import AckCode, ErrorCode, Hl7Error, build_ack, parse

log = logging.getLogger(__name__)
HL7_PATH = "/hl7/v2"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a URL path, not a secret)
RENEW_BEFORE_SECONDS = 60
FORWARD_TIMEOUT_SECONDS = 30.0


class TokenRefused(Exception):
    """The token endpoint refused the client's credentials (a configuration error, not a transient one)."""


@dataclass
class Hl7Forwarder:
    """Forwards messages to the PRM API as an integration client (`http` points at the API's base URL)."""

    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    encoding: str = "utf-8"
    _token: str | None = field(default=None, repr=False)
    _expires_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def token(self, *, renew: bool = False) -> str:
        """A valid integration token (fetched once and renewed shortly before it expires)."""
        async with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires_at:
                response = await self.http.post(
                    TOKEN_PATH,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                        "scope": "hl7",
                    },
                )
                if response.status_code in (400, 401):
                    raise TokenRefused(response.json().get("error", "invalid_client"))
                response.raise_for_status()
                body = response.json()
                self._token = str(body["access_token"])
                self._expires_at = time.monotonic() + max(0, int(body["expires_in"]) - RENEW_BEFORE_SECONDS)
            return self._token

    async def forward(self, block: bytes) -> bytes:
        """The API's ACK to one MLLP block (an AR of our own when the API cannot answer)."""
        try:
            for attempt in range(2):
                token = await self.token(renew=attempt > 0)
                response = await self.http.post(
                    HL7_PATH,
                    content=block,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": f"application/hl7-v2; charset={self.encoding}",
                    },
                    timeout=FORWARD_TIMEOUT_SECONDS,
                )
                if response.status_code != 401:
                    break
            if response.status_code == 200:
                log.info("HL7 message forwarded: %s", response.headers.get("x-hl7-ack-code", "?"))
                return response.content
            log.warning("HL7 message refused by the API with HTTP %d", response.status_code)
            reason = f"The PRM API answered HTTP {response.status_code}; resend later."
        except TokenRefused as exc:
            log.error("the token endpoint refused this listener's client credentials (%s)", exc)
            reason = "The PRM listener's credentials were refused; resend once it is fixed."
        except httpx.HTTPError as exc:
            log.warning("the PRM API is unreachable (%s)", type(exc).__name__)
            reason = "The PRM API is unreachable; resend later."
        return _local_ack(block, self.encoding, reason).encode(self.encoding, "replace")


def _local_ack(block: bytes, encoding: str, reason: str) -> str:
    """An AR for a message the API did not answer (its header echoed when it can be read)."""
    error = Hl7Error(reason, code=ErrorCode.APPLICATION_ERROR, ack=AckCode.REJECT)
    try:
        parsed = parse(block.decode(encoding, "replace"))
    except Hl7Error:
        parsed = None
    return build_ack(parsed, AckCode.REJECT, error)


async def _serve_connection(
    forwarder: Hl7Forwarder, reader: HL7StreamReader, writer: HL7StreamWriter
) -> None:
    """Answer each block of one connection in order, until the sender closes it."""
    try:
        while not reader.at_eof():
            try:
                block = await reader.readblock()
            except asyncio.IncompleteReadError:
                break
            except InvalidBlockError:
                log.warning("an MLLP block was not framed correctly: connection closed")
                break
            writer.writeblock(await forwarder.forward(block))
            await writer.drain()
    finally:
        writer.close()


async def start_listener(forwarder: Hl7Forwarder, host: str, port: int) -> asyncio.Server:
    """Start listening for MLLP connections (port 0: any free port, see the server's sockets)."""

    async def on_connection(reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        await _serve_connection(forwarder, reader, writer)

    return await start_hl7_server(on_connection, host, port)


async def run_listener(
    api_url: str, client_id: str, client_secret: str, host: str, port: int, encoding: str
) -> None:
    """Run the listener until cancelled (Ctrl-C)."""
    async with httpx.AsyncClient(base_url=api_url, timeout=FORWARD_TIMEOUT_SECONDS) as http:
        forwarder = Hl7Forwarder(http, client_id, client_secret, encoding)
        await forwarder.token()  # fail fast on wrong credentials or URL
        server = await start_listener(forwarder, host, port)
        log.info("MLLP listener on %s:%d forwarding to %s%s", host, port, api_url, HL7_PATH)
        async with server:
            await server.serve_forever()
