"""Communication shapes: the API's bodies and responses (also read by the 360 view and conversations)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from core.languages import LanguageTag
from core.pagination import Page
from domain.communications.templates import CATEGORIES
from domain.enums import Channel, CommunicationStatus, Direction
from domain.schemas import FreeJson, NotNull, RequestModel, ResponseModel, without_null


class CommunicationResponse(ResponseModel):
    """One message, inbound or outbound, with its delivery state."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    patient_id: uuid.UUID | None
    journey_instance_id: uuid.UUID | None
    appointment_id: uuid.UUID | None
    direction: Direction
    channel: Channel
    recipient: str | None
    sender: str | None
    subject: str | None
    message: str
    template_name: str | None
    language: str | None = Field(
        description="The language the message was written in: its template's variant, chosen from the "
        "patient's preferred language, then the tenant's default, then English (null for literal text)"
    )
    status: CommunicationStatus
    is_urgent: bool
    scheduled_for: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    provider: str | None
    created_at: datetime
    updated_at: datetime


class CommunicationCreate(RequestModel):
    """A message to send: literal text, or a template filled with `template_vars`."""

    tenant_id: uuid.UUID | None = None
    patient_id: uuid.UUID
    journey_instance_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None
    channel: Channel
    recipient: str | None = Field(default=None, max_length=254, description="Defaults to the patient's")
    subject: str | None = Field(default=None, max_length=300)
    message: str | None = Field(default=None, max_length=10_000)
    template_name: str | None = Field(default=None, max_length=100)
    template_vars: FreeJson = Field(default_factory=dict)
    language: LanguageTag | None = Field(
        default=None,
        description="With a template: the language to prefer over the patient's own (the fallback chain "
        "still applies). With a message: the language it is written in (recorded, and the system "
        "variables such as appointment_date are written in it; default: your tenant's default language)",
    )
    scheduled_for: datetime | None = None
    is_urgent: bool = Field(default=False, description="Bypass quiet hours (never consent)")
    idempotency_key: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _text_or_template(self) -> CommunicationCreate:
        if not self.message and not self.template_name:
            raise ValueError("give either message or template_name")
        if self.scheduled_for is not None and self.scheduled_for.tzinfo is None:
            raise ValueError("scheduled_for needs a time zone offset")
        return self


class CommunicationUpdate(RequestModel):
    """A delivery-state change (status never moves backwards), or a note on a failure."""

    status: CommunicationStatus | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    error_message: str | None = Field(default=None, max_length=2000)


class CommunicationDetail(CommunicationResponse):
    """One message with its failure reason and template variables."""

    error_message: str | None
    template_vars: dict[str, Any]
    provider_message_id: str | None


class CommunicationListResponse(Page[CommunicationResponse]):
    """A page of messages."""


class CommunicationSearchHit(CommunicationResponse):
    """A message found by full-text search, with its rank."""

    rank: float = 0.0


class CommunicationSearchResponse(Page[CommunicationSearchHit]):
    """A page of search hits, best first."""


class CommunicationStats(BaseModel):
    """Totals by channel and by status (the reference's keys)."""

    total: int
    by_channel: dict[str, int]
    by_status: dict[str, int]
    sent: int
    pending: int
    failed: int


class TemplateResponse(BaseModel):
    """A predefined message template."""

    id: str
    name: str
    channel: Channel
    category: str
    subject: str
    body: str
    variables: list[str]
    language: str = Field(description="The language of this variant (a template has one per language)")


class TemplateListResponse(BaseModel):
    """The templates matching the filters, with every channel and category there is."""

    templates: list[TemplateResponse]
    total: int
    channels: list[str]
    categories: list[str]


TEMPLATE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_\-]{1,99}$"
CONTENT_SID_PATTERN = r"^HX[0-9a-f]{32}$"
CONTENT_SID_DESCRIPTION = (
    "WhatsApp templates only: the SID (HX + 32 hex) of the Twilio Content template approved for it, "
    "sent instead of the text outside WhatsApp's 24-hour window"
)
CONTENT_VARIABLES_DESCRIPTION = (
    "The variables (of this template, or system ones) whose values fill the Content template's "
    "{{1}}, {{2}}, ... in this order"
)
ContentVariable = Annotated[str, Field(min_length=1, max_length=100)]


class TemplateCreate(RequestModel):
    """A tenant's own template; `{{ variables }}` in the subject and body are found by compiling them."""

    id: str = Field(
        max_length=100,
        pattern=TEMPLATE_KEY_PATTERN,
        description="Unique in your tenant and not a built-in id (lowercase letters, digits, _ and -)",
    )
    language: LanguageTag | None = Field(
        default=None,
        description="The language of this variant (BCP 47, e.g. 'es' or 'es-MX'; default: your tenant's "
        "default language). An id has at most one variant per language; a message uses the one in the "
        "patient's preferred language, else your default language, else English.",
    )
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    category: str = Field(max_length=32, json_schema_extra={"enum": list(CATEGORIES)})
    subject: str = Field(default="", max_length=300)
    body: str = Field(min_length=1, max_length=10_000)
    is_active: bool = True
    whatsapp_content_sid: str | None = Field(
        default=None, pattern=CONTENT_SID_PATTERN, description=CONTENT_SID_DESCRIPTION
    )
    whatsapp_content_variables: list[ContentVariable] = Field(
        default_factory=list, max_length=100, description=CONTENT_VARIABLES_DESCRIPTION
    )


def _category_not_null(schema: dict[str, Any]) -> None:
    without_null(schema)
    schema["enum"] = list(CATEGORIES)


class TemplateUpdate(RequestModel):
    """A change to one language of a tenant's template (its id and language stay); variables are derived
    again from the new text."""

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    channel: Annotated[Channel | None, NotNull] = None
    category: str | None = Field(default=None, max_length=32, json_schema_extra=_category_not_null)
    subject: Annotated[str | None, NotNull] = Field(default=None, max_length=300)
    body: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=10_000)
    is_active: Annotated[bool | None, NotNull] = None
    whatsapp_content_sid: str | None = Field(
        default=None, pattern=CONTENT_SID_PATTERN, description=CONTENT_SID_DESCRIPTION + " (null removes it)"
    )
    whatsapp_content_variables: list[ContentVariable] | None = Field(
        default=None, max_length=100, description=CONTENT_VARIABLES_DESCRIPTION
    )


class TenantTemplateResponse(TemplateResponse):
    """A tenant's own template."""

    is_active: bool
    whatsapp_content_sid: str | None
    whatsapp_content_variables: list[str]
    created_at: datetime
    updated_at: datetime
