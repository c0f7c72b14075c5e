"""Typed domain errors: each carries its HTTP status; one handler in `api` renders them as {"detail": ...}."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the business raises on purpose."""

    status_code = 400

    def __init__(
        self, detail: str, *, extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class NotFound(DomainError):
    """The record does not exist for this caller (also what another tenant's record looks like)."""

    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state (duplicate MRN, invalid transition, ...)."""

    status_code = 409


class Unprocessable(DomainError):
    """The request is well-formed but its content cannot be accepted. `loc` names where the problem is,
    as a validation error would (`("body", "template_name")`); the API renders it as one item of the same
    list a validation error has, so every 422 has one shape."""

    status_code = 422

    def __init__(
        self,
        detail: str,
        *,
        loc: tuple[str | int, ...] = ("body",),
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, extra=extra, headers=headers)
        self.loc = loc


class BadRequest(DomainError):
    """The request contradicts itself or the caller (e.g. a foreign `tenant_id`)."""

    status_code = 400


class Unauthorized(DomainError):
    """No valid credentials."""

    status_code = 401


class Forbidden(DomainError):
    """Valid credentials, but the caller's role lacks the right."""

    status_code = 403


class ServiceUnavailable(DomainError):
    """A dependency (Temporal) is unreachable; what the request stored is kept and it can be retried."""

    status_code = 503
