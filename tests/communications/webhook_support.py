"""Provider webhooks as the providers call them: Twilio's signed forms and SendGrid's signed events, and
reading a message back as the webhooks left it. Shared by the tests of every directory that posts to them."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from core.database import bind_tenant
from domain.communications.models import Communication
from tests.communications.conftest import API
from tests.communications.provider_support import PUBLIC_BASE, TWILIO_TOKEN

HOOKS = f"{API}/webhooks"


async def twilio_post(client, path: str, params: dict[str, str], *, signature: str | None = None):
    """POST a form as Twilio does, signed over the public URL unless `signature` is given."""
    url = f"{PUBLIC_BASE}{HOOKS}{path}"
    signed = (
        signature if signature is not None else RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    )
    return await client.post(
        f"{HOOKS}{path}",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signed},
    )


async def sendgrid_post(
    client, keys, events: list[dict], *, timestamp: int | None = None, tamper: bool = False
):
    """POST events as SendGrid's signed event webhook does."""
    raw = json.dumps(events)
    stamp = str(timestamp or int(time.time()))
    signature = base64.b64encode(
        keys.private_key.sign((stamp + raw).encode(), ec.ECDSA(hashes.SHA256()))
    ).decode()
    body = raw.replace("delivered", "bounce") if tamper else raw
    return await client.post(
        f"{HOOKS}/sendgrid/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )


async def reload(system_sessionmaker, tenant_id, communication_id) -> Communication:
    """The message as committed now."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.scalar(select(Communication).where(Communication.id == communication_id))
