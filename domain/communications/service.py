"""Sending messages: one record per business idempotency key, rendered text, then the delivery workflow.

The record is inserted under its key in the caller's transaction and its delivery workflow (see `dispatch`)
starts only after that transaction commits, so a retried activity or a repeated request finds the existing
record and never sends twice. Message text and recipients are never logged (PHI).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Unprocessable
from domain.communications import dispatch, policy, templates
from domain.communications.models import Communication
from domain.enums import UNSENT_COMMUNICATION_STATUSES, Channel, CommunicationStatus, Direction
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from domain.tenants.models import Tenant

WHATSAPP_CONTENT = "whatsapp_content"  # the meta_data key of a WhatsApp message's Content template


@dataclass
class SendResult:
    """The message's record, and whether this call created it (False: it already existed under the key)."""

    communication: Communication
    created: bool


def preferred_channel(patient: Patient) -> Channel:
    """The patient's preferred channel, else WhatsApp when they have a phone, else email."""
    if patient.preferred_channel:
        return Channel(patient.preferred_channel)
    return Channel.WHATSAPP if patient.phone_primary else Channel.EMAIL


def recipient_for(patient: Patient, channel: Channel) -> str:
    """The patient's address on `channel`; Unprocessable when they have none."""
    address = patient.email_primary if channel == Channel.EMAIL else patient.phone_primary
    if not address:
        kind = "email address" if channel == Channel.EMAIL else "phone number"
        raise Unprocessable(f"The patient has no {kind} for {channel.value} messages.")
    return address


async def by_idempotency_key(session: AsyncSession, key: str) -> Communication | None:
    """The message recorded under `key` in the session's tenant, if any."""
    return await session.scalar(select(Communication).where(Communication.idempotency_key == key))


async def send_message(
    session: AsyncSession,
    *,
    patient_id: uuid.UUID,
    channel: Channel,
    message: str,
    idempotency_key: str,
    template_name: str | None = None,
    subject: str | None = None,
    appointment_id: uuid.UUID | None = None,
    journey_instance_id: uuid.UUID | None = None,
    workflow_id: str | None = None,
    template_vars: dict[str, Any] | None = None,
    urgent: bool = False,
    consent_confirmation: bool = False,
    template: templates.MessageTemplate | None = None,
) -> SendResult:
    """Record one message to a patient once per `idempotency_key`; its delivery workflow starts after the
    caller commits and applies the send policy (consent, quiet hours, frequency cap) like every message.

    `urgent` messages pass quiet hours and the cap (and the record says so): answers to a message the
    patient has just sent, and offers that expire. A `consent_confirmation` (the one reply to STOP/START)
    goes even to the channel the patient just left. `template` is the template the message was rendered
    from when the caller holds it (a journey's snapshot copy); otherwise `template_name` is looked up.
    Flushes, never commits."""
    existing = await by_idempotency_key(session, idempotency_key)
    if existing is not None:
        if (
            existing.status in {s.value for s in UNSENT_COMMUNICATION_STATUSES}
            and not existing.provider_message_id
        ):
            dispatch.start_after_commit(session, existing)  # a retry after a failed start: harmless
        return SendResult(existing, created=False)
    patient = await session.scalar(select(Patient).where(Patient.id == patient_id))
    if patient is None:
        raise Unprocessable("The patient does not exist.")
    recipient = recipient_for(patient, channel)
    meta_data: dict[str, Any] = {"consent_confirmation": True} if consent_confirmation else {}
    if channel == Channel.WHATSAPP and template_name is not None:
        template = template or await templates.resolve_template(session, template_name)
        if template is not None and template.whatsapp_content_sid is not None:
            variables = await system_variables(session, patient, appointment_id)
            variables.update(template_vars or {})
            meta_data.update(whatsapp_content_meta(template, variables))
    record = Communication(
        id=uuid.uuid4(),
        patient_id=patient.id,
        journey_instance_id=journey_instance_id,
        appointment_id=appointment_id,
        direction=Direction.OUTBOUND.value,
        channel=channel.value,
        recipient=recipient,
        subject=subject,
        message=message,
        template_name=template_name,
        template_vars=template_vars or {},
        status=CommunicationStatus.QUEUED.value,
        is_urgent=urgent or consent_confirmation,
        idempotency_key=idempotency_key,
        workflow_id=workflow_id,
        meta_data=meta_data,
    )
    try:
        async with session.begin_nested():
            session.add(record)
            await session.flush()
    except IntegrityError:
        existing = await by_idempotency_key(session, idempotency_key)
        if existing is None:
            raise
        return SendResult(existing, created=False)
    if not consent_confirmation and await policy.opted_out(session, patient.id, channel):
        record.status, record.failed_at = CommunicationStatus.FAILED.value, datetime.now(UTC)
        record.error_code, record.error_message = "opted_out", f"The patient opted out of {channel.value}."
        await session.flush()
        return SendResult(record, created=True)
    dispatch.start_after_commit(session, record)
    return SendResult(record, created=True)


def whatsapp_content_meta(template: templates.MessageTemplate, variables: dict[str, Any]) -> dict[str, Any]:
    """`{"whatsapp_content": {"sid", "variables"}}` for a WhatsApp message's `meta_data` (the send step uses
    it outside WhatsApp's 24-hour window), or {} when the template has no Content template.

    Unprocessable when a value it needs is missing. The values are PHI: they live in the database only."""
    try:
        content = template.whatsapp_content(variables)
    except templates.TemplateError as exc:
        raise Unprocessable(f"The message cannot be rendered: {exc}") from exc
    return {} if content is None else {WHATSAPP_CONTENT: content}


async def system_variables(
    session: AsyncSession, patient: Patient, appointment_id: uuid.UUID | None
) -> dict[str, str]:
    """The template variables the system fills (see `templates.SYSTEM_VARIABLES`).

    `appointment_date` / `appointment_time` are present only when there is an appointment, so rendering a
    template that needs them without one fails instead of sending a message with a blank date."""
    tenant = await session.get(Tenant, session.info.get("tenant_id") or patient.tenant_id)
    values = {
        "patient_name": f"{patient.first_name} {patient.last_name}",
        "patient_first_name": patient.first_name,
        "practitioner_name": "your care team",
        "clinic_name": tenant.name if tenant is not None else "your clinic",
    }
    if appointment_id is not None:
        appointment = await session.scalar(select(Appointment).where(Appointment.id == appointment_id))
        if appointment is not None:
            practitioner = await session.scalar(
                select(Practitioner).where(Practitioner.id == appointment.practitioner_id)
            )
            if practitioner is not None:
                values["practitioner_name"] = f"Dr. {practitioner.first_name} {practitioner.last_name}"
            tz = ZoneInfo((tenant.timezone if tenant is not None else None) or "UTC")
            local = appointment.start_time.astimezone(tz)
            values["appointment_date"] = f"{local:%a} {local.day} {local:%b %Y}"
            values["appointment_time"] = f"{local:%H:%M}"
    return values


def render_content(
    *, template_id: str | None, text: str | None, subject: str | None, variables: dict[str, Any]
) -> tuple[str | None, str]:
    """(subject, body) of a built-in template or of literal text; TemplateError when a variable is missing."""
    if template_id is not None:
        template = templates.get_template(template_id)
        if template is None:
            raise templates.TemplateError(f"unknown template {template_id!r}")
        return template.render(variables)
    rendered_subject = templates.render_text(subject, variables) if subject else None
    return rendered_subject, templates.render_text(text or "", variables)


async def create_fallback(
    session: AsyncSession, original: Communication, channel: Channel
) -> Communication | None:
    """Record (once) the same content on `channel`, queued for delivery; None without an address."""
    key = f"fallback:{original.id}:{channel.value}"
    existing = await by_idempotency_key(session, key)
    if existing is not None:
        return existing
    patient = await session.scalar(select(Patient).where(Patient.id == original.patient_id))
    if patient is None:
        return None
    try:
        recipient = recipient_for(patient, channel)
    except Unprocessable:
        return None
    copy = Communication(
        patient_id=patient.id,
        journey_instance_id=original.journey_instance_id,
        appointment_id=original.appointment_id,
        direction=Direction.OUTBOUND.value,
        channel=channel.value,
        recipient=recipient,
        subject=original.subject,
        message=original.message,
        template_name=original.template_name,
        template_vars=original.template_vars,
        status=CommunicationStatus.QUEUED.value,
        is_urgent=original.is_urgent,
        idempotency_key=key,
        workflow_id=original.workflow_id,
        meta_data={"fallback_of": str(original.id)},
    )
    session.add(copy)
    await session.flush()
    return copy
