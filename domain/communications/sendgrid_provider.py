"""Email through the official `sendgrid` SDK (synchronous: called in a worker thread)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, From, Mail

from core.settings import Settings
from domain.communications.provider_contract import (
    OutgoingMessage,
    ProviderError,
    ProviderResult,
    blocking_call,
    never_connected,
)
from domain.enums import CommunicationStatus

# The SDK's HTTP client logs every request payload (recipients, subjects, bodies) at DEBUG:
# patient data. Its logger stays at WARNING, whatever PRM_LOG_LEVEL says.
logging.getLogger("python_http_client").setLevel(logging.WARNING)


class SendGridProvider:
    """Sends email with `SendGridAPIClient.send(Mail(...))`; `custom_args` carry the communication id."""

    name = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        host = (self.settings.sendgrid_base_url or "https://api.sendgrid.com").rstrip("/")
        client = SendGridAPIClient(self.settings.sendgrid_api_key, host=host)
        client.client.timeout = self.settings.provider_timeout_seconds
        return client

    def _mail(self, message: OutgoingMessage) -> Any:
        mail = Mail(
            from_email=From(self.settings.sendgrid_from_email, self.settings.sendgrid_from_name),
            to_emails=message.recipient,
            subject=message.subject or "Message from your clinic",
            plain_text_content=message.body,
        )
        if message.communication_id:
            mail.custom_arg = CustomArg("communication_id", message.communication_id)
        if message.send_attempt:  # comes back on every event: the event settles this attempt
            mail.custom_arg = CustomArg("send_attempt", message.send_attempt)
        return mail

    def _send_sync(self, message: OutgoingMessage) -> ProviderResult:
        from python_http_client.exceptions import HTTPError

        try:
            response = self._client().send(self._mail(message))
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            retryable = status == 429 or status >= 500
            raise ProviderError(
                f"SendGrid refused the email (HTTP {status})", retryable=retryable, code=str(status)
            ) from exc
        except OSError as exc:  # URLError, timeouts, connection refused
            raise ProviderError(
                f"SendGrid unreachable: {type(exc).__name__}",
                retryable=True,
                in_doubt=not never_connected(exc),
            ) from exc
        headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
        return ProviderResult(
            provider=self.name,
            status=CommunicationStatus.SENT,
            provider_message_id=headers.get("x-message-id"),
        )

    async def send(self, message: OutgoingMessage) -> ProviderResult:
        """Hand the email to SendGrid; ProviderError (retryable or not) when SendGrid refuses."""
        return await blocking_call(self.settings, functools.partial(self._send_sync, message))
