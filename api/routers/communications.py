"""Communications API (`/communications`): messages, their delivery state, templates, stats and search."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.content_rules import rules
from api.deps import (
    CanDelete,
    CanRead,
    CanWrite,
    CurrentPrincipal,
    SessionDep,
    TenantReadsDep,
    ensure_own_tenant,
)
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.errors import NotFound
from core.languages import LanguageTag
from core.pagination import PageDep
from domain.communications import messages, templates
from domain.communications import reads as message_reads
from domain.communications.models import CommunicationTemplate
from domain.communications.repository import CommunicationRepository
from domain.communications.schemas import (
    CommunicationCreate,
    CommunicationDetail,
    CommunicationListResponse,
    CommunicationResponse,
    CommunicationSearchHit,
    CommunicationSearchResponse,
    CommunicationStats,
    CommunicationUpdate,
    TemplateCreate,
    TemplateListResponse,
    TemplateUpdate,
    TenantTemplateResponse,
)
from domain.enums import Channel, CommunicationStatus, Direction
from domain.journeys.repository import JourneyInstanceRepository
from domain.scheduling import notifications
from domain.schemas import Instant

log = logging.getLogger(__name__)
TEMPLATE_RULES = (
    "The text compiles in the template sandbox, and uses every variable its WhatsApp Content template needs.",
    "A WhatsApp Content template (`whatsapp_content_sid`, its variables) is only a whatsapp template's.",
)
router = APIRouter(prefix="/communications", tags=["communications"], responses=AUTHENTICATED)
TenantFilter = Annotated[uuid.UUID | None, Query(description="Must be your own tenant (or omitted)")]
NO_MESSAGE = "No such message in your tenant"
NOT_FOUND = errors(not_found=NO_MESSAGE)
NO_TEMPLATE = "No such template in your tenant (built-in ones are in the list)"


# First of the router: its most frequent request (why: `api.app`, where the routers are included).
@router.get(
    "/{communication_id:record_id}",
    response_model=CommunicationDetail,
    responses=NOT_FOUND,
)
async def get_communication(communication_id: uuid.UUID, reads: TenantReadsDep) -> CommunicationDetail:
    """One message with its delivery state."""
    return CommunicationDetail.model_validate(await message_reads.communication(reads, communication_id))


@router.get("", response_model=CommunicationListResponse, dependencies=[CanRead])
async def list_communications(
    session: SessionDep,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    journey_instance_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    status: CommunicationStatus | None = None,
    direction: Direction | None = None,
) -> CommunicationListResponse:
    """List messages, newest first, filtered by patient, journey instance, channel, status or direction."""
    repo = CommunicationRepository(session)
    stmt = repo.filtered(
        patient_id=patient_id,
        journey_instance_id=journey_instance_id,
        channel=channel,
        status=status,
        direction=direction,
    )
    rows, total = await repo.page(stmt, page)
    return CommunicationListResponse.build(
        [CommunicationResponse.model_validate(r) for r in rows], total, page
    )


@router.get(
    "/stats",
    response_model=CommunicationStats,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def communication_stats(
    session: SessionDep, principal: CurrentPrincipal, tenant_id: TenantFilter = None
) -> CommunicationStats:
    """Message totals by channel and status (`sent` counts every message that reached at least sent)."""
    ensure_own_tenant(principal, tenant_id)
    return await messages.stats(CommunicationRepository(session))


@router.get(
    "/templates",
    response_model=TemplateListResponse,
    dependencies=[CanRead],
    responses=errors(forbidden=FOREIGN_TENANT),
)
async def list_templates(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: TenantFilter = None,
    channel: Channel | None = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    include_inactive: Annotated[bool, Query(description="Also your deactivated templates")] = False,
    language: Annotated[
        LanguageTag | None, Query(description="Only this language's variants (e.g. es)")
    ] = None,
) -> TemplateListResponse:
    """Message templates for quick replies and automation: the built-in set, then your tenant's own; each
    language of a template is an entry (built-in ones exist in English and Spanish)."""
    ensure_own_tenant(principal, tenant_id)
    return await messages.template_catalogue(
        session, channel, category, include_inactive=include_inactive, language=language
    )


@router.post(
    "/templates",
    response_model=TenantTemplateResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        conflict="The id is a built-in's, or already has this language",
        unprocessable="Invalid, or the text does not compile",
    ),
    openapi_extra=rules(*TEMPLATE_RULES),
)
async def create_template(body: TemplateCreate, session: SessionDep) -> TenantTemplateResponse:
    """Define a template for your tenant; its text must compile in the sandbox (422 otherwise).

    A WhatsApp template may name its approved Twilio Content template (`whatsapp_content_sid`) and the
    variables filling its placeholders in order (`whatsapp_content_variables`): outside WhatsApp's 24-hour
    window after the patient's last message, that is what is sent instead of the text.

    A template has one variant per `language` (default: your tenant's default language): post the same id
    again with another language to add one; each may name its own Content template (Twilio approves one
    per language). A message uses the patient's preferred language, else your default, else English."""
    return _template_out(await messages.create_template(session, body))


TemplateLanguage = Annotated[
    LanguageTag | None,
    Query(description="Which language of the template (default: your tenant's default language)"),
]


@router.get(
    "/templates/{template_id}",
    response_model=TenantTemplateResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_TEMPLATE),
)
async def get_template(
    template_id: str, session: SessionDep, language: TemplateLanguage = None
) -> TenantTemplateResponse:
    """One language of one of your tenant's templates, with its WhatsApp Content template if it has one."""
    return _template_out(await messages.get_template(session, template_id, language))


@router.patch(
    "/templates/{template_id}",
    response_model=TenantTemplateResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_TEMPLATE, conflict="A built-in template cannot be changed"),
    openapi_extra=rules(*TEMPLATE_RULES),
)
async def update_template(
    template_id: str, body: TemplateUpdate, session: SessionDep, language: TemplateLanguage = None
) -> TenantTemplateResponse:
    """Change one language of one of your tenant's templates (built-in ones cannot be changed: 409)."""
    return _template_out(await messages.update_template(session, template_id, body, language))


@router.delete(
    "/templates/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(not_found=NO_TEMPLATE, conflict="A built-in template cannot be removed"),
)
async def delete_template(
    template_id: str, session: SessionDep, language: TemplateLanguage = None
) -> Response:
    """Remove one language of one of your tenant's templates; messages already sent from it keep their
    text."""
    await messages.delete_template(session, template_id, language)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _template_out(record: CommunicationTemplate) -> TenantTemplateResponse:
    return TenantTemplateResponse(
        **messages.template_response(templates.from_record(record)).model_dump(),
        is_active=record.is_active,
        whatsapp_content_sid=record.whatsapp_content_sid,
        whatsapp_content_variables=list(record.whatsapp_content_variables),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@router.get("/search", response_model=CommunicationSearchResponse)
async def search_communications(
    reads: TenantReadsDep,
    page: PageDep,
    query: Annotated[
        str, Query(min_length=2, max_length=200, description="Words to find (web-search syntax)")
    ],
    patient_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    date_from: Instant | None = None,
    date_to: Instant | None = None,
) -> CommunicationSearchResponse:
    """Full-text search over message subjects and text, best match first."""
    rows, total = await message_reads.search(
        reads,
        query,
        offset=page.offset,
        limit=page.page_size,
        patient_id=patient_id,
        channel=channel,
        date_from=date_from,
        date_to=date_to,
    )
    items = [CommunicationSearchHit.model_validate({**row, "rank": rank}) for row, rank in rows]
    return CommunicationSearchResponse.build(items, total, page)


@router.post(
    "",
    response_model=CommunicationDetail,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        409,
        not_found="Unknown patient, journey instance or appointment",
        unprocessable="Invalid, or an unknown template or a missing variable (without a `message`)",
        forbidden=FOREIGN_TENANT,
    ),
)
async def create_communication(
    body: CommunicationCreate, session: SessionDep, principal: CurrentPrincipal
) -> CommunicationDetail:
    """Render and queue a message; it is sent (at `scheduled_for`, after the send policy) by a workflow.

    A `template_name` beside a `message` is only recorded as a label. A repeated `idempotency_key` returns
    the message already recorded under it. A patient who opted out of the channel gets the message
    recorded as `failed` (`error_code` `opted_out`) and never sent."""
    ensure_own_tenant(principal, body.tenant_id)
    appointment = None
    if body.appointment_id is not None:
        appointment = await notifications.appointment_facts(session, body.appointment_id)
        if appointment is None:
            raise NotFound("Appointment not found.")
    if body.journey_instance_id is not None:
        await JourneyInstanceRepository(session).get_or_404(body.journey_instance_id)
    record, _ = await messages.create_communication(
        CommunicationRepository(session), body, appointment=appointment
    )
    return CommunicationDetail.model_validate(record)


@router.patch(
    "/{communication_id:record_id}",
    response_model=CommunicationDetail,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_MESSAGE, conflict="The status cannot move backwards"),
    openapi_extra=rules("`error_message` is set only on a failed message (`status` failed, now or already)."),
)
async def update_communication(
    communication_id: uuid.UUID, body: CommunicationUpdate, session: SessionDep
) -> CommunicationDetail:
    """Mark a message sent, delivered, read or failed (with `error_message`); never backwards (409)."""
    record = await messages.update_communication(CommunicationRepository(session), communication_id, body)
    return CommunicationDetail.model_validate(record)


@router.patch(
    "/{communication_id:record_id}/read",
    response_model=CommunicationDetail,
    dependencies=[CanWrite],
    responses=errors(409, not_found=NO_MESSAGE),
)
async def mark_communication_read(communication_id: uuid.UUID, session: SessionDep) -> CommunicationDetail:
    """Mark a message read (sets `read_at`)."""
    record = await messages.mark_read(CommunicationRepository(session), communication_id)
    return CommunicationDetail.model_validate(record)


@router.delete(
    "/{communication_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(409, not_found=NO_MESSAGE),
)
async def delete_communication(communication_id: uuid.UUID, session: SessionDep) -> Response:
    """Permanently remove a message record."""
    await messages.delete_communication(CommunicationRepository(session), communication_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
