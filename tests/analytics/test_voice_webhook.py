"""Twilio Voice status callbacks: signed, idempotent per CallSid, never backwards, tenant from the number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from core.database import mark_system
from domain.analytics.models import VoiceCall
from domain.scheduling.models import Location
from tests.analytics.conftest import Clinic

TOKEN = "test-twilio-auth-token"
BASE = "http://testserver"
PATH = "/api/v1/prm/webhooks/twilio/voice-status"
CLINIC_NUMBER = "+14155550100"


@pytest.fixture
async def signed_app(app: Any) -> AsyncIterator[None]:
    """The app configured with a Twilio auth token and its public URL."""
    saved = app.state.settings
    app.state.settings = saved.model_copy(update={"twilio_auth_token": TOKEN, "public_base_url": BASE})
    yield
    app.state.settings = saved


async def callback(
    client: httpx.AsyncClient, params: dict[str, str], *, query: str = "", sign: bool = True
) -> int:
    url = f"{BASE}{PATH}{query}"
    headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)} if sign else {}
    resp = await client.post(f"{PATH}{query}", data=params, headers=headers)
    return resp.status_code


def params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": sid,
        "CallStatus": status,
        "From": "+14155550123",
        "To": CLINIC_NUMBER,
        "Direction": "inbound",
        **extra,
    }


async def call(clinic: Clinic, sid: str) -> VoiceCall | None:
    async with clinic.sessionmaker() as session:
        mark_system(session)
        return await session.scalar(select(VoiceCall).where(VoiceCall.call_sid == sid))


async def test_unsigned_callback_is_403(signed_app: None, client: httpx.AsyncClient) -> None:
    assert await callback(client, params("CA1", "ringing"), sign=False) == 403


async def test_forged_signature_is_403(signed_app: None, client: httpx.AsyncClient) -> None:
    resp = await client.post(PATH, data=params("CA1", "ringing"), headers={"X-Twilio-Signature": "forged"})
    assert resp.status_code == 403


async def test_calls_to_the_clinic_number_are_recorded_and_linked_to_the_patient(
    signed_app: None, client: httpx.AsyncClient, clinic: Clinic
) -> None:
    await clinic.add(Location(name="Main", phone=CLINIC_NUMBER))
    sid = f"CA{clinic.tenant_id.hex}"
    assert await callback(client, params(sid, "ringing")) == 204
    assert await callback(client, params(sid, "in-progress")) == 204
    assert await callback(client, params(sid, "completed", CallDuration="95")) == 204
    assert await callback(client, params(sid, "completed", CallDuration="95")) == 204  # a repeat
    assert await callback(client, params(sid, "ringing")) == 204  # late, out of order
    row = await call(clinic, sid)
    assert row is not None
    assert (row.tenant_id, row.patient_id) == (clinic.tenant_id, clinic.patient_id)
    assert (row.status, row.duration_seconds, row.answered) == ("completed", 95, True)
    assert row.ended_at is not None


async def test_tenant_named_in_the_signed_url(
    signed_app: None, client: httpx.AsyncClient, clinic: Clinic
) -> None:
    sid = f"CB{clinic.tenant_id.hex}"
    assert await callback(client, params(sid, "busy"), query=f"?tenant_id={clinic.tenant_id}") == 204
    row = await call(clinic, sid)
    assert row is not None and row.tenant_id == clinic.tenant_id and not row.answered


async def test_unknown_number_is_404(signed_app: None, client: httpx.AsyncClient) -> None:
    assert await callback(client, params("CAunknown", "ringing", To="+14155550999")) == 404


async def test_unknown_status_is_422(signed_app: None, client: httpx.AsyncClient) -> None:
    assert await callback(client, params("CA2", "exploded")) == 422
