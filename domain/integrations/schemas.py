"""Integration client shapes, as the admin API takes and answers them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from core.client_credentials import Scope
from core.languages import normalise as normalise_language
from domain.enums import Gender
from domain.schemas import RequestModel, ResponseModel
from domain.tenants.schemas import validate_timezone

ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^prm_client_[A-Za-z0-9_-]+$")]


# ---- HL7 v2 feed settings (domain.hl7.feed) ----------------------------------------------------------------

MAX_CODES_PER_MAP = 500
MAX_LOCAL_CODE_LENGTH = 64
MAX_APPOINTMENT_TYPE_LENGTH = 64


class CodeKind(StrEnum):
    """What a code map translates: PID-15 languages (to BCP 47), PID-8 sex codes (to our genders), SCH-8
    appointment types (to the type we store)."""

    LANGUAGE = "language"
    SEX = "sex"
    APPOINTMENT_TYPE = "appointment_type"


def local_code(value: str) -> str:
    """How a sender's local code is kept and looked up: stripped and upper-cased (`spanish` = `SPANISH`)."""
    return value.strip().upper()


def _language(value: str) -> str:
    return normalise_language(value)


def _sex(value: str) -> str:
    return Gender(value.strip().lower()).value


def _appointment_type(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_APPOINTMENT_TYPE_LENGTH:
        raise ValueError(f"an appointment type is 1 to {MAX_APPOINTMENT_TYPE_LENGTH} characters")
    return value


_TARGETS = {CodeKind.LANGUAGE: _language, CodeKind.SEX: _sex, CodeKind.APPOINTMENT_TYPE: _appointment_type}


def checked_code_map(kind: CodeKind, codes: dict[str, str]) -> dict[str, str]:
    """One kind's map with its local codes upper-cased and its targets validated (ValueError naming the
    local code whose target is not usable)."""
    if len(codes) > MAX_CODES_PER_MAP:
        raise ValueError(f"a code map holds at most {MAX_CODES_PER_MAP} codes")
    checked: dict[str, str] = {}
    for code, target in codes.items():
        key = local_code(code)
        if not key or len(key) > MAX_LOCAL_CODE_LENGTH:
            raise ValueError(f"a local code is 1 to {MAX_LOCAL_CODE_LENGTH} characters")
        try:
            checked[key] = _TARGETS[kind](target)
        except ValueError as exc:
            expected = {
                CodeKind.LANGUAGE: "a BCP 47 language tag (e.g. es, pt-BR)",
                CodeKind.SEX: f"one of {', '.join(g.value for g in Gender)}",
                CodeKind.APPOINTMENT_TYPE: "an appointment type",
            }[kind]
            raise ValueError(f"{kind.value} code {key!r} must map to {expected}") from exc
    return checked


class CodeMaps(BaseModel):
    """A feed's local codes mapped onto ours, per kind (a kind left out is left as it is on an update)."""

    model_config = {"extra": "forbid"}

    language: dict[str, str] | None = Field(
        default=None, description='PID-15 names or local codes -> BCP 47 tags, e.g. {"SPANISH": "es"}'
    )
    sex: dict[str, str] | None = Field(
        default=None, description='PID-8 local codes -> male, female, other, unknown, e.g. {"X": "other"}'
    )
    appointment_type: dict[str, str] | None = Field(
        default=None, description='SCH-8 local codes -> the appointment type stored, e.g. {"FU": "follow-up"}'
    )

    @field_validator("language", "sex", "appointment_type")
    @classmethod
    def _check(cls, codes: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        return None if codes is None else checked_code_map(CodeKind(str(info.field_name)), codes)


FeedTimezone = Annotated[str, AfterValidator(validate_timezone)]


class FeedSettings(RequestModel):
    """An HL7 v2 feed's settings, as `POST` takes them and `PATCH /integration-clients/{id}` changes them."""

    timezone: FeedTimezone | None = Field(
        default=None,
        description="IANA zone an HL7 time without an offset is read in (e.g. America/New_York); "
        "null: the tenant's",
    )
    ignore_unsupported_messages: bool | None = Field(
        default=None,
        description="Message types this receiver does not use (A02, A05, A28, ...): accepted and ignored "
        "(AA with an ERR of severity W) when true, refused (AR) when false",
    )
    code_maps: CodeMaps | None = Field(
        default=None, description="Local codes mapped onto ours; each kind given replaces that kind's map"
    )


class FeedSettingsResponse(ResponseModel):
    """An HL7 v2 feed's settings."""

    timezone: str | None
    ignore_unsupported_messages: bool
    code_maps: dict[str, dict[str, str]]


# ---- end of HL7 v2 feed settings ---------------------------------------------------------------------------


class IntegrationClientCreate(FeedSettings):
    """Body of `POST /integration-clients`: what the system is, and what it may call."""

    name: str = Field(min_length=1, max_length=200, description="What the client is, e.g. `Epic production`")
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.FHIR], min_length=1, max_length=len(Scope), description="fhir, hl7"
    )

    # -- SMART Backend Services (private_key_jwt): the client's public keys --
    jwks: dict[str, Any] | None = Field(
        default=None,
        description='The client\'s public keys, a JWK Set (`{"keys": [...]}`, RSA for RS384 or EC P-384 for '
        "ES384, each with a `kid`). A client registered with keys signs assertions instead of sending a "
        "secret, and gets no secret.",
    )
    jwks_uri: str | None = Field(
        default=None,
        max_length=2000,
        description="Instead of `jwks`: the https URL the client publishes its JWK Set at (fetched and "
        "cached).",
    )


class IntegrationClientKeys(RequestModel):
    """Body of `PUT /integration-clients/{client_id}/keys`: the client's public keys, replacing those it
    had (neither field: the client no longer authenticates with keys)."""

    jwks: dict[str, Any] | None = Field(default=None, description="A JWK Set of public keys")
    jwks_uri: str | None = Field(default=None, max_length=2000, description="Or the https URL of one")


class IssuedSecretResponse(ResponseModel):
    """A client's new secret: shown only in this answer (only its hash is stored)."""

    client_id: str
    client_secret: str | None = Field(
        description="Send it to `POST /oauth/token`; it cannot be shown again (none for a client registered "
        "with keys)"
    )
    secret_id: uuid.UUID | None
    scopes: list[Scope]


class SecretResponse(ResponseModel):
    """One of a client's secrets, never the secret itself."""

    secret_id: uuid.UUID
    ends_with: str = Field(description="The secret's last characters, to tell secrets apart")
    created_at: datetime
    revoked_at: datetime | None


class IntegrationClientResponse(ResponseModel):
    """An integration client and its secrets."""

    client_id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None
    secrets: list[SecretResponse]
    # -- SMART Backend Services --
    jwks: dict[str, Any] | None = Field(default=None, description="The public keys registered, if any")
    jwks_uri: str | None = Field(default=None, description="Where the client's keys are fetched, if so")
    hl7_feed: FeedSettingsResponse = Field(description="How its HL7 v2 messages are read")
