"""The one path that records an outbound message: `send_message`.

The API (`POST /communications`, through `messages.create_communication`), journeys, appointment reminders
and cancellations, the booking chat, waitlist offers and STOP/START confirmations all record their messages
here, so they share one behaviour: a patient missing from the tenant is 404 (`NotFound`, as for every id a
body refers to in this codebase), so are a missing appointment or journey instance; a channel the patient
opted out of records the message as `failed` (`opted_out`) and starts nothing, so no caller crashes on it;
a repeated idempotency key returns the row already recorded under it, the database's unique constraint
deciding between two concurrent inserts. The record is inserted in the caller's transaction and its
delivery workflow starts only after that transaction commits (`dispatch`); `delivery` sends it later.
Message text and recipients are never logged (PHI).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import languages
from core.errors import NotFound, Unprocessable
from core.phones import to_e164
from domain.communications import dispatch, policy, templates
from domain.communications.models import Communication
from domain.communications.repository import CommunicationRepository
from domain.enums import Channel, CommunicationStatus, Direction
from domain.patients.models import Patient
from domain.tenants.service import settings_of, tenant_of

WHATSAPP_CONTENT = "whatsapp_content"  # the meta_data key of a WhatsApp message's Content template
OPTED_OUT = "opted_out"  # the error_code of a message refused because the patient opted out


@dataclass(frozen=True)
class Content:
    """A message's subject and text as recorded, the template they were rendered from (if any), and the
    language they are in: the template's, else the one the caller stated for literal text (else None)."""

    subject: str | None
    body: str
    template: templates.MessageTemplate | None = None
    stated_language: str | None = None

    @property
    def language(self) -> str | None:
        """The message's language, as recorded on it."""
        return self.template.language if self.template is not None else self.stated_language


# Renders the content for the patient once the message is known to be new (the API's Jinja text).
Compose = Callable[[Patient], Awaitable[Content]]
# Template variables written in the language the message turned out to be in (dates, titles, ...).
Localised = Callable[[str], dict[str, Any]]


@dataclass
class SendResult:
    """The message's record, and whether this call created it (False: it already existed under the key).
    `patient`, the recipient this call loaded when it created the record, stays in the session while the
    caller holds the result (the identity map keeps only weak references): a send gate in the same
    transaction finds it there instead of reading it again."""

    communication: Communication
    created: bool
    patient: Patient | None = None


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


def normalised_recipient(channel: Channel, recipient: str) -> str:
    """An address given explicitly, normalised (lower-case email, E.164 phone); Unprocessable if invalid."""
    try:
        if channel == Channel.EMAIL:
            return str(TypeAdapter(EmailStr).validate_python(recipient)).lower()
        return to_e164(recipient.removeprefix("whatsapp:"))
    except (ValueError, ValidationError) as exc:
        raise Unprocessable(
            f"recipient is not a valid {channel.value} address.", loc=("body", "recipient")
        ) from exc


async def by_idempotency_key(session: AsyncSession, key: str) -> Communication | None:
    """The message recorded under `key` in the session's tenant, if any."""
    return await session.scalar(select(Communication).where(Communication.idempotency_key == key))


async def send_message(
    session: AsyncSession,
    *,
    patient_id: uuid.UUID,
    channel: Channel,
    message: str | Compose,
    idempotency_key: str,
    template_name: str | None = None,
    subject: str | None = None,
    appointment_id: uuid.UUID | None = None,
    appointment: AppointmentFacts | None = None,
    journey_instance_id: uuid.UUID | None = None,
    workflow_id: str | None = None,
    template_vars: dict[str, Any] | None = None,
    urgent: bool = False,
    consent_confirmation: bool = False,
    template: templates.MessageTemplate | None = None,
    recipient: str | None = None,
    scheduled_for: datetime | None = None,
) -> SendResult:
    """Record one outbound message once per `idempotency_key`, with the start of its delivery workflow
    (`dispatch`), which applies the send policy (consent, quiet hours, frequency cap) like every message.

    `message` is the finished text, or a `Compose` that renders the content for the patient (`render_for`:
    the API's text and templates, journeys' and reminders' templates, in the patient's language); finished
    text is never rendered again. `template_name` is recorded as given and never rendered here; the record's
    `language` is that of the template the content was rendered from (None for literal text). On WhatsApp,
    the template the text was rendered from (the `Compose`'s answer; for finished text `template`, the
    caller's copy, else `template_name`'s variant in the patient's language) lends its approved Content
    template for use outside the 24-hour window.

    `urgent` messages pass quiet hours and the cap (and the record says so); a `consent_confirmation` (the
    one reply to STOP/START) is urgent and goes even to the channel the patient just left. `recipient`
    defaults to the patient's address; a future `scheduled_for` records the message as scheduled.

    `appointment_id` and `journey_instance_id` are the caller's to vouch for (the API checks a client's; the
    database's foreign keys hold), and `appointment` says what the message may tell of it.

    NotFound for a patient missing from the tenant; Unprocessable for an
    unusable address or content. Flushes, never commits."""
    existing = await by_idempotency_key(session, idempotency_key)
    if existing is not None:
        return SendResult(existing, created=False)
    patient = await session.get(Patient, patient_id)  # a caller that loaded the patient lends it
    if patient is None:
        raise NotFound("Patient not found.")
    address = normalised_recipient(channel, recipient) if recipient else recipient_for(patient, channel)
    if callable(message):
        content = await message(patient)
    else:
        if template is None and template_name is not None and channel == Channel.WHATSAPP:
            chain = await language_chain(session, patient)
            template = await templates.resolve_template(session, template_name, chain)
        content = Content(subject, message, template)
    meta_data: dict[str, Any] = {"consent_confirmation": True} if consent_confirmation else {}
    rendered_from = content.template
    if channel == Channel.WHATSAPP and rendered_from is not None and rendered_from.whatsapp_content_sid:
        variables = await system_variables(session, patient, appointment, rendered_from.language)
        variables.update(template_vars or {})
        meta_data.update(whatsapp_content_meta(rendered_from, variables))
    later = scheduled_for is not None and scheduled_for > datetime.now(UTC)
    record = Communication(
        id=uuid.uuid4(),
        patient_id=patient.id,
        journey_instance_id=journey_instance_id,
        appointment_id=appointment_id,
        direction=Direction.OUTBOUND.value,
        channel=channel.value,
        recipient=address,
        subject=content.subject,
        message=content.body,
        template_name=template_name,
        template_vars=template_vars or {},
        language=content.language,
        status=(CommunicationStatus.SCHEDULED if later else CommunicationStatus.QUEUED).value,
        is_urgent=urgent or consent_confirmation,
        scheduled_for=scheduled_for,
        idempotency_key=idempotency_key,
        meta_data=meta_data,
    )
    # The workflow that asked for the message (a journey's), else the message's own delivery workflow.
    record.workflow_id = workflow_id or dispatch.delivery_workflow_id(record.id)
    if not consent_confirmation and await policy.opted_out(session, patient.id, channel):
        record.status, record.failed_at = CommunicationStatus.FAILED.value, datetime.now(UTC)
        record.error_code = OPTED_OUT
        record.error_message = f"The patient opted out of {channel.value} messages."
    try:
        async with session.begin_nested():
            session.add(record)
            await session.flush()
    except IntegrityError:
        # A concurrent insert under the same key committed first (the unique constraint waited for it).
        existing = await by_idempotency_key(session, idempotency_key)
        if existing is None:
            raise
        return SendResult(existing, created=False)
    await CommunicationRepository(session).save(record)  # only what the INSERT did not return is read
    if record.status != CommunicationStatus.FAILED.value:
        dispatch.record_delivery_start(session, record)
    return SendResult(record, created=True, patient=patient)


def whatsapp_content_meta(template: templates.MessageTemplate, variables: dict[str, Any]) -> dict[str, Any]:
    """`{"whatsapp_content": {"sid", "variables"}}` for a WhatsApp message's `meta_data` (the send step uses
    it outside WhatsApp's 24-hour window), or {} when the template has no Content template.

    Unprocessable when a value it needs is missing. The values are PHI: they live in the database only."""
    try:
        content = template.whatsapp_content(variables)
    except templates.TemplateError as exc:
        raise Unprocessable(f"The message cannot be rendered: {exc}") from exc
    return {} if content is None else {WHATSAPP_CONTENT: content}


@dataclass(frozen=True)
class AppointmentFacts:
    """What a message may say about its appointment, given by the caller: communications reads no
    scheduling table (`scheduling.notifications.appointment_facts` builds it). `practitioner_name` is the
    practitioner's name without a title (the message's language gives it: `Dr.`, or `Dra.` in Spanish when
    `practitioner_gender` is female). `timezone` is the appointment's location's, when it has one (else the
    tenant's is used)."""

    start_time: datetime
    practitioner_name: str | None = None
    timezone: str | None = None
    practitioner_gender: str | None = None


async def default_language(session: AsyncSession, patient: Patient) -> str:
    """The tenant's default message language."""
    tenant = await tenant_of(session, session.info.get("tenant_id") or patient.tenant_id)
    return settings_of(tenant).default_language if tenant is not None else languages.ENGLISH


async def language_chain(session: AsyncSession, patient: Patient, stated: str | None = None) -> list[str]:
    """The languages to write to the patient in, best first: the `stated` one when the sender chose one,
    the patient's preferred language, the tenant's default language (each then its shorter forms), English."""
    default = await default_language(session, patient)
    return languages.fallback_chain(stated, patient.preferred_language, default)


async def system_variables(
    session: AsyncSession,
    patient: Patient,
    appointment: AppointmentFacts | None = None,
    language: str | None = None,
) -> dict[str, str]:
    """The template variables the system fills (see `templates.SYSTEM_VARIABLES`), in `language`.

    `appointment_date` / `appointment_time` are present only when there is an appointment, so rendering a
    template that needs them without one fails instead of sending a message with a blank date."""
    tenant = await tenant_of(session, session.info.get("tenant_id") or patient.tenant_id)
    values = {
        "patient_name": f"{patient.first_name} {patient.last_name}",
        "patient_first_name": patient.first_name,
        "practitioner_name": templates.phrase("care_team", language),
        "clinic_name": tenant.name if tenant is not None else templates.phrase("clinic", language),
    }
    if appointment is not None:
        if appointment.practitioner_name:
            values["practitioner_name"] = templates.practitioner_title(
                appointment.practitioner_name, appointment.practitioner_gender, language
            )
        tz = ZoneInfo(appointment.timezone or (tenant.timezone if tenant is not None else None) or "UTC")
        local = appointment.start_time.astimezone(tz)
        values["appointment_date"] = templates.format_day(local.date(), language)
        values["appointment_time"] = templates.format_time(local, language)
    return values


async def render_for(
    session: AsyncSession,
    patient: Patient,
    *,
    template_id: str | None = None,
    variants: Sequence[templates.MessageTemplate] | None = None,
    text: str | None = None,
    subject: str | None = None,
    variables: dict[str, Any] | Localised | None = None,
    appointment: AppointmentFacts | None = None,
    language: str | None = None,
) -> Content:
    """A message's content for the patient, in their language: the one render path of every message.

    With `text`, that literal Jinja text (its `subject` too) is rendered with the system variables in the
    `language` the sender says it is written in, else the tenant's default language; the content's language
    is `language` (None when not stated). Otherwise the template (`variants` given, e.g. a journey's kept
    copy, else `template_id`'s: built-in, else the tenant's active ones) is rendered in the first language
    of `language_chain` it has (`language` first, when the sender chose one); `subject`, when given,
    replaces its own. `variables` may be `Localised`: called with the language chosen, for values that
    must be written in it. UnknownTemplate when there is no such template, TemplateError when a variable
    is missing."""
    if text is not None or (template_id is None and variants is None):
        written_in = language or await default_language(session, patient)
        values = await system_variables(session, patient, appointment, written_in)
        values.update((variables(written_in) if callable(variables) else variables) or {})
        rendered_subject, body = await templates.render_off_loop((subject or None, text or ""), values)
        return Content(rendered_subject, body or "", stated_language=language)
    chain = await language_chain(session, patient, language)
    if variants is None:
        variants = await templates.template_variants(session, template_id or "")
    template = templates.choose(variants, chain)
    if template is None:
        raise templates.UnknownTemplate(f"unknown template {template_id!r}")
    written_in = templates.regional_form(template.language, chain)
    values = await system_variables(session, patient, appointment, written_in)
    values.update((variables(written_in) if callable(variables) else variables) or {})
    own_subject, body, given_subject = await templates.render_off_loop(
        (template.subject, template.body, subject or None), values
    )
    return Content(given_subject if subject else own_subject, body or "", template)


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
        language=original.language,
        status=CommunicationStatus.QUEUED.value,
        is_urgent=original.is_urgent,
        idempotency_key=key,
        workflow_id=original.workflow_id,
        meta_data={"fallback_of": str(original.id)},
    )
    session.add(copy)
    await session.flush()
    return copy
