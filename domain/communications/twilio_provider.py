"""SMS and WhatsApp through the official `twilio` SDK (synchronous: called in a worker thread)."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from core.settings import Settings
from domain.communications.provider_contract import (
    OutgoingMessage,
    ProviderError,
    ProviderResult,
    blocking_call,
    never_connected,
)
from domain.enums import Channel, CommunicationStatus

# Twilio error codes that no retry can fix (https://www.twilio.com/docs/api/errors).
PERMANENT_ERRORS = {
    21211: "The recipient's phone number is not valid.",
    21408: "Sending to this region is not enabled on the Twilio account.",
    21610: "The recipient has unsubscribed (replied STOP) from this sender.",
    21612: "Twilio cannot route a message to this number.",
    21614: "The recipient's number cannot receive SMS (not a mobile number).",
    # Also reached when the window closes between our check and Twilio's (see delivery.whatsapp_window_open).
    63016: "WhatsApp free text is only allowed within 24 hours of the patient's last message.",
}
STATUS_CALLBACK_PATH = "/api/v1/prm/webhooks/twilio/status"

# The SDK's HTTP client logs every request (URL, query, headers) at INFO:
# patient data. Its logger stays at WARNING, whatever PRM_LOG_LEVEL says.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def whatsapp_address(number: str) -> str:
    """`whatsapp:+E164`, as Twilio addresses WhatsApp senders and recipients."""
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def classify(status: int | None, code: int | None, message: str) -> ProviderError:
    """A ProviderError for a Twilio error answer: 429 and 5xx retry, other 4xx fail for good."""
    if code in PERMANENT_ERRORS:
        return ProviderError(f"Twilio {code}: {PERMANENT_ERRORS[code]}", retryable=False, code=str(code))
    retryable = status is None or status == 429 or status >= 500
    label = f"Twilio {code}" if code else f"Twilio HTTP {status}"
    return ProviderError(f"{label}: {message}", retryable=retryable, code=str(code or status or ""))


def status_callback_url(public_base_url: str, message: OutgoingMessage) -> str:
    """The `StatusCallback` Twilio calls for `message`: our webhook, with the communication id and the send
    attempt's key in its query (Twilio signs the URL with its query, so they come back authenticated)."""
    url = public_base_url.rstrip("/") + STATUS_CALLBACK_PATH
    ids = {"communication_id": message.communication_id, "attempt": message.send_attempt}
    query = urlencode({name: value for name, value in ids.items() if value})
    return f"{url}?{query}" if query else url


class TwilioProvider:
    """Sends SMS and WhatsApp messages with `client.messages.create`."""

    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        client = Client(
            self.settings.twilio_account_sid,
            self.settings.twilio_auth_token,
            http_client=TwilioHttpClient(timeout=self.settings.provider_timeout_seconds),
        )
        if self.settings.twilio_base_url:
            client.api.base_url = self.settings.twilio_base_url.rstrip("/")
        return client

    def _request(self, message: OutgoingMessage) -> dict[str, Any]:
        if message.channel == Channel.WHATSAPP:
            to = whatsapp_address(message.recipient)
            sender = whatsapp_address(self.settings.twilio_whatsapp_from or "")
        else:
            to, sender = message.recipient, self.settings.twilio_sms_from or ""
        fields: dict[str, Any] = {"to": to, "from_": sender}
        if message.channel == Channel.WHATSAPP and message.content_sid:
            fields["content_sid"] = message.content_sid
            fields["content_variables"] = json.dumps(message.content_variables or {})
        else:
            fields["body"] = message.body
        if self.settings.public_base_url:
            fields["status_callback"] = status_callback_url(self.settings.public_base_url, message)
        return fields

    def _send_sync(self, message: OutgoingMessage) -> ProviderResult:
        try:
            created = self._client().messages.create(**self._request(message))
        except TwilioRestException as exc:
            raise classify(exc.status, exc.code, str(exc.msg)) from exc
        except TwilioException as exc:
            raise ProviderError(f"Twilio client error: {type(exc).__name__}", retryable=True) from exc
        except OSError as exc:  # connection refused, timeouts (requests' errors are OSErrors)
            raise ProviderError(
                f"Twilio unreachable: {type(exc).__name__}", retryable=True, in_doubt=not never_connected(exc)
            ) from exc
        return ProviderResult(
            provider=self.name, status=CommunicationStatus.SENT, provider_message_id=created.sid
        )

    async def send(self, message: OutgoingMessage) -> ProviderResult:
        """Create the message at Twilio; ProviderError (retryable or not) when Twilio refuses."""
        return await blocking_call(self.settings, functools.partial(self._send_sync, message))
