"""Message providers: the one interface every channel's sender implements, and how one is chosen.

Without Twilio or SendGrid credentials the service records each message through the `OutboxProvider`,
which sends nothing. With them, SMS and WhatsApp go through `TwilioProvider` and email through
`SendGridProvider` (registered below); the callers (`domain.communications.delivery`) never change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.settings import Settings, get_settings
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


class OutboxProvider:
    """Records messages as sent without sending them: the provider when no credentials are configured."""

    name = "outbox"

    async def send(self, message: OutgoingMessage) -> ProviderResult:
        """Accept the message; nothing leaves the process."""
        return ProviderResult(
            provider=self.name,
            status=CommunicationStatus.SENT,
            provider_message_id=f"outbox-{uuid.uuid4()}",
        )


# A factory per channel, asked in order; it returns None when its credentials are not configured.
ProviderFactory = Callable[[Channel, Settings], MessageProvider | None]
_factories: list[ProviderFactory] = []


def register_provider(factory: ProviderFactory) -> None:
    """Add a real provider (e.g. Twilio for sms/whatsapp, SendGrid for email); first match wins."""
    _factories.append(factory)


def provider_for(channel: Channel, settings: Settings | None = None) -> MessageProvider:
    """The provider that sends on `channel`: the first configured one, else the outbox."""
    settings = settings or get_settings()
    for factory in _factories:
        provider = factory(channel, settings)
        if provider is not None:
            return provider
    return OutboxProvider()


def _twilio(channel: Channel, settings: Settings) -> MessageProvider | None:
    sender = {Channel.SMS: settings.twilio_sms_from, Channel.WHATSAPP: settings.twilio_whatsapp_from}
    if not (settings.twilio_account_sid and settings.twilio_auth_token and sender.get(channel)):
        return None
    from domain.communications.twilio_provider import TwilioProvider

    return TwilioProvider(settings)


def _sendgrid(channel: Channel, settings: Settings) -> MessageProvider | None:
    if channel != Channel.EMAIL or not (settings.sendgrid_api_key and settings.sendgrid_from_email):
        return None
    from domain.communications.sendgrid_provider import SendGridProvider

    return SendGridProvider(settings)


register_provider(_twilio)
register_provider(_sendgrid)


def log_provider_configuration(settings: Settings | None = None) -> None:
    """Say at start-up which provider sends on each channel (the outbox sends nothing)."""
    log = logging.getLogger("communications")
    for channel in Channel:
        name = provider_for(channel, settings).name
        if name == OutboxProvider.name:
            log.warning("%s messages go to the outbox (no credentials): they are recorded, not sent", channel)
        else:
            log.info("%s messages are sent through %s", channel, name)
