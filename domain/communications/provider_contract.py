"""What every message provider takes and returns: the leaf module the providers and their callers share.

`providers` (the factory), `twilio_provider`, `sendgrid_provider` and `delivery` all import from here and
from nowhere else in this package, so no provider module imports another.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from core.settings import Settings
from domain.enums import Channel, CommunicationStatus

T = TypeVar("T")


@dataclass(frozen=True)
class OutgoingMessage:
    """What a provider is asked to deliver (held in memory only; never logged)."""

    channel: Channel
    recipient: str
    body: str
    subject: str | None
    idempotency_key: str
    communication_id: str | None = None  # travels to the provider so its callbacks find the record
    send_attempt: str | None = None  # the attempt's key: travels too, so a callback settles that attempt
    # WhatsApp outside its 24-hour window: the approved Content template and its placeholder values
    # ({"1": ..., "2": ...}), sent instead of `body`.
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None


@dataclass(frozen=True)
class ProviderResult:
    """What a provider reports back."""

    provider: str
    status: CommunicationStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ProviderError(Exception):
    """A provider failed; `retryable` says whether trying again may succeed, `in_doubt` whether the provider
    may have accepted the message all the same (the request went out and no answer came back)."""

    def __init__(
        self, message: str, *, retryable: bool = True, code: str | None = None, in_doubt: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.in_doubt = in_doubt


def never_connected(exc: BaseException) -> bool:
    """Whether a transport error came before any connection was made (refused, unknown host, connect
    timeout), so the request never reached the provider; any other (a read timeout, a connection dropped
    after the request went out) leaves the message in doubt."""
    from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError is one too

    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError | socket.gaierror | ConnectTimeoutError):
            return True
        # requests and urllib wrap the socket's error: in `reason`, in `args`, or as the cause.
        linked = (error.__cause__, error.__context__, getattr(error, "reason", None), *error.args)
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False


class MessageProvider(Protocol):
    """Delivers messages on one or more channels."""

    name: str

    async def send(self, message: OutgoingMessage) -> ProviderResult:
        """Deliver `message`; raise ProviderError on failure."""
        ...


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _provider_threads(settings: Settings) -> ThreadPoolExecutor:
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(
                max_workers=settings.worker_activities_at_once, thread_name_prefix="provider"
            )
        return _threads


async def blocking_call(settings: Settings, call: Callable[[], T]) -> T:
    """Run a provider SDK's blocking HTTP call (Twilio's and SendGrid's clients are synchronous) on the
    providers' own threads, with the caller's context: one thread per activity the process runs at once
    (`Settings.worker_activities_at_once`, sized by the first caller), so every send in flight has one.
    On the loop's default pool (`asyncio.to_thread`: min(32, cores + 4) threads, 6 on two cores, shared with
    template rendering) a few slow answers would hold every other send behind them for up to the provider's
    timeout."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_provider_threads(settings), functools.partial(context.run, call))
