"""Choosing a message provider: the one factory that builds each channel's sender from the settings.

SMS and WhatsApp go through `TwilioProvider` and email through `SendGridProvider` when their credentials are
configured; otherwise the `OutboxProvider` records each message and sends nothing. The callers
(`domain.communications.delivery`) never change. The interface they share lives in `provider_contract`.
"""

from __future__ import annotations

import logging
import uuid

from core.settings import Settings
from domain.communications.provider_contract import (
    MessageProvider,
    OutgoingMessage,
    ProviderError,
    ProviderResult,
)
from domain.communications.sendgrid_provider import SendGridProvider
from domain.communications.twilio_provider import TwilioProvider
from domain.enums import Channel, CommunicationStatus

__all__ = [
    "MessageProvider",
    "OutboxProvider",
    "OutgoingMessage",
    "ProviderError",
    "ProviderResult",
    "log_provider_configuration",
    "provider_for",
]


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


def provider_for(channel: Channel, settings: Settings) -> MessageProvider:
    """The provider that sends on `channel`: Twilio (SMS, WhatsApp) or SendGrid (email) when configured,
    else the outbox (`settings` come from the process: the worker's, the API's)."""
    if channel == Channel.EMAIL:
        if settings.sendgrid_api_key and settings.sendgrid_from_email:
            return SendGridProvider(settings)
        return OutboxProvider()
    sender = settings.twilio_whatsapp_from if channel == Channel.WHATSAPP else settings.twilio_sms_from
    if settings.twilio_account_sid and settings.twilio_auth_token and sender:
        return TwilioProvider(settings)
    return OutboxProvider()


def log_provider_configuration(settings: Settings) -> None:
    """Say at start-up which provider sends on each channel (the outbox sends nothing)."""
    log = logging.getLogger("communications")
    for channel in Channel:
        name = provider_for(channel, settings).name
        if name == OutboxProvider.name:
            log.warning("%s messages go to the outbox (no credentials): they are recorded, not sent", channel)
        else:
            log.info("%s messages are sent through %s", channel, name)
