"""What the OpenAPI schema says beyond the routes: tags, operation ids and the error responses.

Generated clients are read by people: an operation is `<resource>.<action>` (`patients.list`,
`journey_instances.advance`), grouped under one tag per resource, and declares every error it can answer
with the body it comes with (`api.errors`).
"""

from __future__ import annotations

from typing import Any

from fastapi.utils import generate_unique_id

from api.errors import RETRY_AFTER_SECONDS, ErrorDetail, InternalErrorDetail, UnprocessableDetail

Responses = dict[int | str, dict[str, Any]]

# One tag per resource, in the API reference's order (its extra resources next to their kin).
TAGS: list[dict[str, Any]] = [
    {
        "name": "patients",
        "description": "Register, find, update, merge and deactivate patients; their 360 view, appointments "
        "and conversations.",
    },
    {
        "name": "practitioners",
        "description": "The clinicians patients book with; a short list for dropdowns, their specialities.",
    },
    {
        "name": "appointments",
        "description": "Booking without double-booking, day and upcoming lists, statistics, conflict checks "
        "and booking by WhatsApp conversation.",
    },
    {"name": "locations", "description": "The clinic's sites; each has the time zone that defines its day."},
    {"name": "time slots", "description": "Practitioners' bookable time, with a capacity; can be blocked."},
    {"name": "waitlist", "description": "Patients waiting for an earlier time, and the offers made to them."},
    {"name": "journeys", "description": "Journey definitions: ordered stages with triggers and actions."},
    {
        "name": "journey instances",
        "description": "Patients placed on journeys: each runs as a durable workflow; manual stages are "
        "advanced here.",
    },
    {
        "name": "journey triggers",
        "description": "What starts journeys on their own (domain events matched by `trigger_conditions`): "
        "a dry run over recent events.",
    },
    {
        "name": "cohorts",
        "description": "Saved patient selections by declarative criteria (age, visits, journeys, consent, "
        "...), and a preview of who they hold now.",
    },
    {
        "name": "campaigns",
        "description": "A cohort enrolled into a journey, each patient once, by one durable workflow: "
        "launch, pace, pause, resume, cancel, counts.",
    },
    {
        "name": "communications",
        "description": "Messages by WhatsApp, SMS and email: sending, delivery state, templates, statistics "
        "and full-text search.",
    },
    {
        "name": "webhooks",
        "description": "Called by Twilio and SendGrid, authenticated by their signatures (no bearer token).",
    },
    {"name": "tickets", "description": "Follow-up tickets with SLA clocks, and their history."},
    {
        "name": "analytics",
        "description": "Dashboard metrics for a period, in the tenant's time zone, and a real-time stream.",
    },
    {
        "name": "audit",
        "description": "The audit trail of patient data: who read or changed what, when, from where and "
        "with what outcome (administrators).",
    },
    {
        "name": "integration clients",
        "description": "The systems (EHRs) that call the FHIR and HL7 endpoints with OAuth client "
        "credentials, "
        "and their secrets: create, rotate, revoke (administrators).",
    },
    {
        "name": "tenant",
        "description": "Your tenant (clinic): its name, time zone and default message language, which "
        "administrators change.",
    },
    {"name": "health", "description": "Liveness and readiness probes for the load balancer."},
    {
        "name": "codec",
        "description": "Temporal's codec server: the Temporal UI decrypts workflow payloads through it "
        "(operators and admins).",
    },
]

# Actions that read badly when derived from the route's function name.
ACTIONS = {
    "health": "live",
    "patient_360": "get_360",
    "patient_duplicates": "list_duplicates",
    "patient_appointments": "list_appointments",
    "patient_conversations": "list_conversations",
    "todays_appointments": "list_today",
    "upcoming_appointments": "list_upcoming",
    "add_to_waitlist": "add",
    "remove_from_waitlist": "remove",
    "appointment_analytics": "appointments",
    "journey_analytics": "journeys",
    "communication_analytics": "communication",
    "voice_call_analytics": "voice_calls",
    "realtime_metrics": "realtime",
    "sendgrid_event_webhook": "sendgrid_events",
    "voice_status_callback": "twilio_voice_status",
    "list_audit_records": "list",
    "create_integration_client": "create",
    "list_integration_clients": "list",
    "rotate_integration_client_secret": "rotate_secret",
    "revoke_integration_client_secret": "revoke_secret",
    "revoke_integration_client": "revoke",
}


def operation_id(route: Any) -> str:
    """`<resource>.<action>`: the route's tag, and its function's name without the resource's words
    (`list_patients` under `patients` is `patients.list`), unless `ACTIONS` names it better. A route of no
    resource (none of the app's: tests add some) keeps FastAPI's id."""
    if not route.tags:
        return generate_unique_id(route)
    tag = str(route.tags[0])
    resource = tag.replace(" ", "_")
    if route.name in ACTIONS:
        return f"{resource}.{ACTIONS[route.name]}"
    resource_words = {w for word in tag.split() for w in (word, word.removesuffix("s"))}
    action = "_".join(w for w in route.name.split("_") if w not in resource_words)
    return f"{resource}.{action or route.name}"


def legacy_operation_id(route: Any) -> str:
    """A deprecated alias's operation: its successor's id with `_legacy` (`journey_instances.get_legacy`)."""
    return f"{operation_id(route)}_legacy"


# ---- error responses --------------------------------------------------------------------------------

_RETRY_AFTER = {
    "Retry-After": {
        "description": f"Seconds to wait before retrying ({RETRY_AFTER_SECONDS})",
        "schema": {"type": "integer"},
    }
}
_DEFAULTS: dict[int, dict[str, Any]] = {
    401: {
        "model": ErrorDetail,
        "description": "No valid bearer token, or its tenant is unknown or inactive",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    403: {"model": ErrorDetail, "description": "Your role does not allow this"},
    404: {"model": ErrorDetail, "description": "No such record in your tenant"},
    409: {"model": ErrorDetail, "description": "Conflicts with the current state or a concurrent change"},
    413: {
        "model": ErrorDetail,
        "description": "The request body is larger than the limit (`PRM_MAX_BODY_BYTES`)",
    },
    422: {"model": UnprocessableDetail, "description": "The request is invalid, or its content unacceptable"},
    429: {
        "model": ErrorDetail,
        "description": "Over the rate limit of the user, the tenant or (webhooks) the source address",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the window has room",
                "schema": {"type": "integer"},
            },
            "X-RateLimit-Limit": {"description": "Requests the window allows", "schema": {"type": "integer"}},
            "X-RateLimit-Remaining": {"description": "Requests left in it", "schema": {"type": "integer"}},
            "X-RateLimit-Reset": {
                "description": "When it has room (epoch seconds)",
                "schema": {"type": "integer"},
            },
        },
    },
    500: {"model": InternalErrorDetail, "description": "Unexpected error (named in the log by `request_id`)"},
    503: {
        "model": ErrorDetail,
        "description": "The database (or Temporal) is unreachable; retry shortly",
        "headers": _RETRY_AFTER,
    },
}


# A `tenant_id` (query or body) names the tenant the caller means; the token's is the only one it may name.
FOREIGN_TENANT = "Your role does not allow this, or `tenant_id` is not your own tenant's id"


def errors(
    *statuses: int,
    forbidden: str | None = None,
    not_found: str | None = None,
    conflict: str | None = None,
    unprocessable: str | None = None,
    unavailable: str | None = None,
) -> Responses:
    """The `responses` declaring these error statuses with their bodies: `statuses` with the usual
    description, or a status named by keyword with what it means for this operation."""
    described = {
        403: forbidden,
        404: not_found,
        409: conflict,
        422: unprocessable,
        503: unavailable,
    }
    chosen = [*statuses, *(status for status, text in described.items() if text is not None)]
    responses: Responses = {}
    for status in sorted(set(chosen)):
        responses[status] = dict(_DEFAULTS[status])
        if described.get(status):
            responses[status]["description"] = described[status]
    return responses


# What every route behind a bearer token can answer; a router declares it once for all its routes.
AUTHENTICATED = errors(401, 403, 413, 422, 429, 500, 503)
# Provider webhooks: a bad signature is 403; there is no token.
SIGNED = errors(413, 422, 429, 500, 503, forbidden="Missing, forged or altered signature")
