"""Provider webhooks (`/webhooks/...`): no bearer token; each request is authenticated by its signature."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import RawSessionDep
from api.openapi import SIGNED
from api.ratelimit import limit_webhook_source
from api.webhook_auth import SendGridEvents, TwilioForm
from domain.analytics.sentiment import record_inbound_sentiment
from domain.communications import webhooks
from domain.journeys.service import record_reply_received
from domain.scheduling.replies import route_inbound_reply

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], responses=SIGNED, dependencies=[Depends(limit_webhook_source)]
)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def reply_routing(request: Request) -> webhooks.ReplyRouting:
    """Who hears of an inbound reply: waiting journeys, the booking conversation or waitlist offer it may
    answer (scheduling), and the sentiment analytics."""

    async def route_booking(
        session: AsyncSession, patient_id: uuid.UUID, communication_id: uuid.UUID
    ) -> None:
        await route_inbound_reply(session, patient_id=patient_id, communication_id=communication_id)

    return webhooks.ReplyRouting(
        notify_journeys=record_reply_received, route_booking=route_booking, score=record_inbound_sentiment
    )


@router.post("/twilio/status", status_code=status.HTTP_204_NO_CONTENT)
async def twilio_message_status(
    form: TwilioForm,
    session: RawSessionDep,
    communication_id: str | None = None,
    attempt: str | None = None,
) -> Response:
    """Twilio's message status callback (`MessageSid`, `MessageStatus`, `ErrorCode`), on the URL the send
    step gave Twilio: its query names the message and the send attempt (signed with the rest of the URL)."""
    await webhooks.apply_twilio_status(
        session,
        message_sid=form.get("MessageSid", ""),
        status=form.get("MessageStatus", ""),
        error_code=form.get("ErrorCode") or None,
        communication_id=communication_id,
        attempt=attempt,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/twilio/messages",
    response_class=Response,
    responses={
        200: {
            "description": "An empty TwiML document: Twilio sends no reply of its own",
            "content": {"text/xml": {"schema": {"type": "string"}, "example": EMPTY_TWIML}},
        }
    },
)
async def twilio_inbound_message(form: TwilioForm, session: RawSessionDep, request: Request) -> Response:
    """An SMS or WhatsApp message from a patient: stored on their conversation and routed to waiting flows."""
    await webhooks.receive_twilio_message(
        session,
        reply_routing(request),
        message_sid=form.get("MessageSid", ""),
        sender=form.get("From", ""),
        receiver=form.get("To", ""),
        body=form.get("Body", ""),
    )
    return Response(content=EMPTY_TWIML, media_type="text/xml")


@router.post("/sendgrid/events", status_code=status.HTTP_204_NO_CONTENT)
async def sendgrid_event_webhook(events: SendGridEvents, session: RawSessionDep) -> Response:
    """SendGrid's signed event webhook (delivered, open, bounce, dropped, unsubscribe, ...)."""
    await webhooks.apply_sendgrid_events(session, events)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
