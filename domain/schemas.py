"""Schema building blocks shared by every domain: the base model and the validated field types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr

from core.phones import to_e164
from core.settings import get_settings


def _phone(value: str) -> str:
    return to_e164(value, get_settings().default_phone_region)


PhoneNumber = Annotated[str, AfterValidator(_phone)]
"""A phone number in any common notation, stored in E.164."""

Email = Annotated[EmailStr, AfterValidator(lambda v: v.lower())]
"""An email address, validated and lower-cased."""


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields (including server-owned ones like `id`) are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    """Base of responses, read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


def changes(update: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually set (`exclude_unset`)."""
    return update.model_dump(exclude_unset=True)
