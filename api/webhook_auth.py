"""Signature checks for provider webhooks: the one place a Twilio or SendGrid request is authenticated.

`TwilioForm` is a dependency for any Twilio webhook (messages, message status, voice status): it checks
`X-Twilio-Signature` with the SDK's `RequestValidator` over the URL Twilio called, rebuilt from the
configured public base URL (never from the Host header, which a proxy rewrites and an attacker controls),
and returns the form fields. `SendGridEvents` checks the signed event webhook (ECDSA over timestamp + the raw
body) and the timestamp's age. Forged, unsigned, altered or stale requests are 403 before anything changes.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from core.errors import Forbidden
from core.settings import Settings

REFUSED = "The request's signature is missing or invalid."


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def public_url(request: Request, settings: Settings) -> str:
    """The URL the provider called: the configured public base URL + the request's path and query."""
    base = (settings.public_base_url or "").rstrip("/")
    query = request.url.query
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


async def twilio_form(request: Request) -> dict[str, str]:
    """The form fields of a Twilio webhook whose `X-Twilio-Signature` is valid; 403 otherwise."""
    from twilio.request_validator import RequestValidator

    settings = _settings(request)
    signature = request.headers.get("X-Twilio-Signature")
    if not (settings.twilio_auth_token and settings.public_base_url and signature):
        raise Forbidden(REFUSED)
    raw = (await request.body()).decode("utf-8", errors="replace")
    params = dict(parse_qsl(raw, keep_blank_values=True))
    validator = RequestValidator(settings.twilio_auth_token)
    if not validator.validate(public_url(request, settings), params, signature):
        raise Forbidden(REFUSED)
    return params


TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]


async def sendgrid_events(request: Request) -> list[dict[str, Any]]:
    """The events of a SendGrid webhook whose ECDSA signature and timestamp are valid; 403 otherwise."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    settings = _settings(request)
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature")
    timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp")
    if not (settings.sendgrid_webhook_public_key and signature and timestamp):
        raise Forbidden(REFUSED)
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError as exc:
        raise Forbidden(REFUSED) from exc
    if age > settings.sendgrid_webhook_max_age_seconds:
        raise Forbidden(REFUSED)
    raw = (await request.body()).decode("utf-8", errors="replace")
    try:
        verified = EventWebhook(settings.sendgrid_webhook_public_key).verify_signature(
            raw, signature, timestamp
        )
    except (ValueError, TypeError) as exc:  # malformed key or signature encoding
        raise Forbidden(REFUSED) from exc
    if not verified:
        raise Forbidden(REFUSED)
    try:
        events = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser (the body was signed, yet)
        return []
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


SendGridEvents = Annotated[list[dict[str, Any]], Depends(sendgrid_events)]
