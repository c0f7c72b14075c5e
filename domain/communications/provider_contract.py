"""What every message provider takes and returns: the leaf module the providers and their callers share.

`providers` (the factory), `twilio_provider`, `sendgrid_provider` and `delivery` all import from here and
from nowhere else in this package, so no provider module imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.enums import Channel, CommunicationStatus


@dataclass(frozen=True)
class OutgoingMessage:
    """What a provider is asked to deliver (held in memory only; never logged)."""

    channel: Channel
    recipient: str
    body: str
    subject: str | None
    idempotency_key: str
    communication_id: str | None = None  # travels to the provider so its callbacks find the record
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
    """A provider failed; `retryable` says whether trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool = True, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class MessageProvider(Protocol):
    """Delivers messages on one or more channels."""

    name: str

    async def send(self, message: OutgoingMessage) -> ProviderResult:
        """Deliver `message`; raise ProviderError on failure."""
        ...
