"""The Communications API's use cases: create (rendered from the request body, then recorded by the one
send path `service.send_message`), update, delete, mark read, statistics and the template catalogue.

The package's roles: `service` creates every outbound message (the send path), `dispatch` records its
delivery workflow's start, `delivery` hands it to its provider once (`providers` builds that
provider), `policy` decides when it may go, `webhooks` applies what providers report back, and this module
serves the API.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import languages
from core.errors import Conflict, NotFound, Unprocessable
from domain.communications import service, templates
from domain.communications.models import Communication, CommunicationTemplate
from domain.communications.repository import CommunicationRepository, advance_status
from domain.communications.schemas import (
    CommunicationCreate,
    CommunicationStats,
    CommunicationUpdate,
    TemplateCreate,
    TemplateListResponse,
    TemplateResponse,
    TemplateUpdate,
)
from domain.enums import Channel, CommunicationStatus
from domain.patients.models import Patient
from domain.schemas import changes
from domain.tenants.service import settings_of, tenant_of

S = CommunicationStatus
PATCHABLE = (S.SENT, S.DELIVERED, S.READ, S.FAILED)


async def create_communication(
    repo: CommunicationRepository,
    data: CommunicationCreate,
    *,
    appointment: service.AppointmentFacts | None = None,
) -> tuple[Communication, bool]:
    """Render and record a message (queued or scheduled) through the send path; (record, created).

    `message` and `subject` are Jinja text filled with the system variables and `template_vars`. Without a
    `message`, `template_name` names the template rendered (422 when it is unknown or a variable it needs
    was not given: here, never a failure later); with one, `template_name` is only recorded as a label.
    `appointment` is what the message may say of `data.appointment_id` (the caller has checked that id and
    `data.journey_instance_id` belong to the tenant). Everything else (404s, opt-outs, a repeated
    `idempotency_key`) is `service.send_message`'s one rule."""
    session = repo.session

    async def compose(patient: Patient) -> service.Content:
        return await _render(session, data, patient, appointment)

    result = await service.send_message(
        session,
        patient_id=data.patient_id,
        channel=data.channel,
        message=compose,
        idempotency_key=data.idempotency_key or f"api:{uuid.uuid4()}",
        template_name=data.template_name,
        template_vars=data.template_vars,
        appointment_id=data.appointment_id,
        appointment=appointment,
        journey_instance_id=data.journey_instance_id,
        urgent=data.is_urgent,
        recipient=data.recipient,
        scheduled_for=data.scheduled_for,
    )
    return result.communication, result.created


async def _render(
    session: AsyncSession,
    data: CommunicationCreate,
    patient: Patient,
    appointment: service.AppointmentFacts | None,
) -> service.Content:
    """An API message's content: its own text, else its template's in the patient's language; 422 when it
    cannot be rendered."""
    literal = bool(data.message) or data.template_name is None  # a template_name beside a message: a label
    try:
        return await service.render_for(
            session,
            patient,
            template_id=None if literal else data.template_name,
            text=(data.message or "") if literal else None,
            subject=data.subject,
            variables=data.template_vars,
            appointment=appointment,
            language=data.language,
        )
    except templates.UnknownTemplate as exc:
        raise Unprocessable(
            f"Unknown template {data.template_name!r}.", loc=("body", "template_name")
        ) from exc
    except templates.TemplateError as exc:
        raise Unprocessable(f"The message cannot be rendered: {exc}") from exc


async def update_communication(
    repo: CommunicationRepository, communication_id: uuid.UUID, data: CommunicationUpdate
) -> Communication:
    """Apply a PATCH: a forward status move (409 when it would go backwards), or a failure's message."""
    record = await repo.get_or_404(communication_id)
    if data.status is not None and data.status not in PATCHABLE:
        raise Unprocessable(
            f"status can be set to {', '.join(s.value for s in PATCHABLE)} only.", loc=("body", "status")
        )
    if data.status is not None and data.status.value != record.status:
        at = data.read_at or data.delivered_at or datetime.now(UTC)
        moved = await advance_status(
            repo.session,
            record.id,
            data.status,
            at=at,
            error_code="manual" if data.status == S.FAILED else None,
            error_message=data.error_message,
        )
        if not moved:
            raise Conflict(f"A {record.status} message cannot become {data.status.value}.")
    elif data.error_message is not None:
        if record.status != S.FAILED.value:
            raise Unprocessable(
                "error_message can only be set on a failed message.", loc=("body", "error_message")
            )
        record.error_message = data.error_message
    await repo.session.flush()
    await repo.session.refresh(record)
    return record


async def mark_read(repo: CommunicationRepository, communication_id: uuid.UUID) -> Communication:
    """Mark a message read (idempotent); 409 for a failed message."""
    return await update_communication(repo, communication_id, CommunicationUpdate(status=S.READ))


async def delete_communication(repo: CommunicationRepository, communication_id: uuid.UUID) -> None:
    """Remove a message permanently."""
    await repo.delete(await repo.get_or_404(communication_id))


async def stats(repo: CommunicationRepository) -> CommunicationStats:
    """Totals by channel and status; `sent` counts every message that reached at least `sent`."""
    by_channel, raw = await repo.counts()
    read = raw.get(S.READ.value, 0)
    delivered = raw.get(S.DELIVERED.value, 0) + read
    sent = raw.get(S.SENT.value, 0) + delivered
    pending = sum(raw.get(s.value, 0) for s in (S.PENDING, S.SCHEDULED, S.QUEUED))
    failed = raw.get(S.FAILED.value, 0)
    return CommunicationStats(
        total=sum(raw.values()),
        by_channel={c.value: by_channel.get(c.value, 0) for c in Channel},
        by_status={"sent": sent, "delivered": delivered, "read": read, "pending": pending, "failed": failed},
        sent=sent,
        pending=pending,
        failed=failed,
    )


def template_response(t: templates.MessageTemplate) -> TemplateResponse:
    return TemplateResponse(
        id=t.id,
        name=t.name,
        channel=t.channel,
        category=t.category,
        subject=t.subject,
        body=t.body,
        variables=t.variables,
        language=t.language,
    )


async def template_catalogue(
    session: AsyncSession,
    channel: Channel | None,
    category: str | None,
    *,
    include_inactive: bool = False,
    language: str | None = None,
) -> TemplateListResponse:
    """The built-in templates and the tenant's own (active ones unless asked) matching the filters, each
    language of a template an entry; `language` (422 when it is not a tag) keeps that language only."""
    tag = checked_language(language) if language is not None else None
    found = templates.list_templates(channel.value if channel else None, category, tag)
    stmt = select(CommunicationTemplate).order_by(CommunicationTemplate.key, CommunicationTemplate.language)
    if channel is not None:
        stmt = stmt.where(CommunicationTemplate.channel == channel.value)
    if category is not None:
        stmt = stmt.where(CommunicationTemplate.category == category)
    if tag is not None:
        stmt = stmt.where(CommunicationTemplate.language == tag)
    if not include_inactive:
        stmt = stmt.where(CommunicationTemplate.is_active.is_(True))
    found += [templates.from_record(r) for r in (await session.scalars(stmt)).all()]
    return TemplateListResponse(
        templates=[template_response(t) for t in found],
        total=len(found),
        channels=[c.value for c in Channel],
        categories=list(templates.CATEGORIES),
    )


def checked_language(value: str, where: str = "query") -> str:
    """`value` as a normalised language tag; 422 (at `where`'s `language`) when it is not one."""
    try:
        return languages.normalise(value)
    except ValueError as exc:
        raise Unprocessable(f"language {exc}.", loc=(where, "language")) from exc


async def _language_or_default(session: AsyncSession, language: str | None, where: str = "query") -> str:
    """The variant a request means: its `language` (normalised), else the tenant's default language."""
    if language is not None:
        return checked_language(language, where)
    tenant = await tenant_of(session, session.info["tenant_id"])
    return settings_of(tenant).default_language if tenant is not None else languages.ENGLISH


def _checked(category: str, subject: str, body: str) -> list[str]:
    """The variables of a tenant template's text; 422 for an unknown category or text that won't compile."""
    if category not in templates.CATEGORIES:
        raise Unprocessable(
            f"category must be one of {', '.join(templates.CATEGORIES)}.", loc=("body", "category")
        )
    try:
        return sorted(templates.compile_text(subject) | templates.compile_text(body))
    except templates.TemplateError as exc:
        raise Unprocessable(f"The template does not compile: {exc}") from exc


def _check_whatsapp_content(record: CommunicationTemplate) -> None:
    """422 unless the Content template is on a WhatsApp template and fills its placeholders from variables
    the template uses or the system fills."""
    names = record.whatsapp_content_variables
    if record.whatsapp_content_sid is None:
        if names:
            raise Unprocessable(
                "whatsapp_content_variables need a whatsapp_content_sid.",
                loc=("body", "whatsapp_content_sid"),
            )
        return
    if record.channel != Channel.WHATSAPP.value:
        raise Unprocessable(
            "whatsapp_content_sid can only be set on a whatsapp template.",
            loc=("body", "whatsapp_content_sid"),
        )
    known = set(record.variables) | templates.SYSTEM_VARIABLES
    unknown = [name for name in names if name not in known]
    if unknown:
        raise Unprocessable(
            f"whatsapp_content_variables must be variables of the template or system variables; "
            f"unknown: {', '.join(unknown)}."
        )


async def _own_template(
    session: AsyncSession, template_id: str, language: str | None
) -> CommunicationTemplate:
    """One language of the tenant's template (`language`, else the tenant's default): 409 for a built-in
    id, 404 when the tenant has no such variant."""
    if templates.is_builtin(template_id):
        raise Conflict("Built-in templates cannot be changed or deleted.")
    return await get_template(session, template_id, language)


async def create_template(session: AsyncSession, data: TemplateCreate) -> CommunicationTemplate:
    """Add a tenant template, or another language of one: 409 when its id is a built-in's or that language
    of it exists already, 422 when it won't compile."""
    variables = await asyncio.to_thread(_checked, data.category, data.subject, data.body)  # CPU: off the loop
    if templates.is_builtin(data.id):
        raise Conflict(f"{data.id!r} is the id of a built-in template.")
    language = await _language_or_default(session, data.language, "body")
    taken = f"The template {data.id!r} already exists in {language!r}."
    found = await session.scalar(
        select(CommunicationTemplate.id).where(
            CommunicationTemplate.key == data.id, CommunicationTemplate.language == language
        )
    )
    if found is not None:
        raise Conflict(taken)
    record = CommunicationTemplate(
        key=data.id,
        language=language,
        name=data.name,
        channel=data.channel.value,
        category=data.category,
        subject=data.subject,
        body=data.body,
        variables=variables,
        is_active=data.is_active,
        whatsapp_content_sid=data.whatsapp_content_sid,
        whatsapp_content_variables=data.whatsapp_content_variables,
    )
    _check_whatsapp_content(record)
    session.add(record)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent create took the (id, language) first
        raise Conflict(taken) from exc
    await session.refresh(record)
    return record


async def update_template(
    session: AsyncSession, template_id: str, data: TemplateUpdate, language: str | None = None
) -> CommunicationTemplate:
    """Change one language of a tenant template (`language`, else the tenant's default); the variables are
    derived again (422 when the new text won't compile, or no longer uses a variable its WhatsApp Content
    template needs). A null `whatsapp_content_sid` removes the Content template."""
    record = await _own_template(session, template_id, language)
    fields = changes(data)
    if "channel" in fields and fields["channel"] is not None:
        fields["channel"] = Channel(fields["channel"]).value
    if "whatsapp_content_sid" in fields and fields["whatsapp_content_sid"] is None:
        fields.setdefault("whatsapp_content_variables", [])
    if "whatsapp_content_variables" in fields and fields["whatsapp_content_variables"] is None:
        fields["whatsapp_content_variables"] = []
    for name, value in fields.items():
        if value is None and name != "whatsapp_content_sid":
            raise Unprocessable(f"{name} cannot be null.", loc=("body", name))
        setattr(record, name, value)
    record.variables = await asyncio.to_thread(_checked, record.category, record.subject, record.body)
    _check_whatsapp_content(record)
    await session.flush()
    await session.refresh(record)
    return record


async def get_template(
    session: AsyncSession, template_id: str, language: str | None = None
) -> CommunicationTemplate:
    """One language (`language`, else the tenant's default) of one of the tenant's own templates (404
    otherwise, built-in ones included: they are in the list)."""
    tag = await _language_or_default(session, language)
    record = await session.scalar(
        select(CommunicationTemplate).where(
            CommunicationTemplate.key == template_id, CommunicationTemplate.language == tag
        )
    )
    if record is None:
        raise NotFound("Template not found.")
    return record


async def delete_template(session: AsyncSession, template_id: str, language: str | None = None) -> None:
    """Remove one language of a tenant template (messages already rendered from it keep their text)."""
    await session.delete(await _own_template(session, template_id, language))
    await session.flush()
