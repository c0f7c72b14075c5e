"""Where the audit trail (`core.audit`) meets the request: every call to an operation on patient data leaves
a record of who, what, which record and patient, when, from where and how it ended.

`AuditMiddleware` gives each request an `AuditTrail` and watches it go by: the route FastAPI matched (its
operation id is the action), the caller `authenticate` authenticated, the ids in the path, the body and
the answer, and the answer's status. Two moments record:

- a write commits its record with it: `api.deps` calls `record_write` right before the request's
  transaction commits, so there is no change without its record (and no record of a change rolled back).
  The record waits in `audit_pending` (no lock: writes of a tenant do not queue behind each other) and the
  app's `AuditBuffer`, woken by the commit, chains it right after;
- everything else (reads, and writes that failed, so changed nothing) is queued once the answer is out and
  chained in batches by the app's `AuditBuffer`: the request pays for no extra round trip.

A request with no authenticated caller (401: no valid token, hence no tenant to chain to) is not recorded,
nor are provider webhooks (no user; their signature is the check) and operations on no patient data
(practitioners, locations, time slots, journey definitions, analytics). The codec server records its own
decodes, one per payload with the workflow it belongs to (`api.routers.codec`), through the same buffer.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openapi import operation_id
from core.audit import Actor, AuditBuffer, AuditEvent, AuditOutcome, append, outcome_of
from core.auth import Principal

log = logging.getLogger(__name__)

# The tags of the operations that read or write patient data (and the trail itself).
AUDITED_TAGS = frozenset(
    {
        "patients",
        "appointments",
        "waitlist",
        "journey instances",
        "journey triggers",
        "cohorts",
        "campaigns",
        "communications",
        "tickets",
        "audit",
    }
)
# The table a resource's create inserts into: its new row's id is the record's resource id.
RESOURCE_TABLES = {
    "patients": "patients",
    "appointments": "appointments",
    "waitlist": "waitlist_entries",
    "journey_instances": "journey_instances",
    "cohorts": "cohorts",
    "campaigns": "campaigns",
    "communications": "communications",
    "tickets": "tickets",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_PEEK_BYTES = 256 * 1024  # bodies read for ids only up to this size
_TRAIL = "audit_trail"


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) == 36:
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


def _json_object(chunks: list[bytes]) -> dict[str, Any]:
    body = b"".join(chunks)
    if not body or len(body) > MAX_PEEK_BYTES:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser: no ids to read from it
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass
class AuditTrail:
    """What one request has shown of itself so far; turned into audit events once it is known enough."""

    scope: Scope
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    request_body: list[bytes] = field(default_factory=list)
    response_body: list[bytes] = field(default_factory=list)
    peek_response: bool = False
    status: int | None = None
    written_patients: dict[uuid.UUID, None] = field(default_factory=dict)  # ordered set
    created_id: uuid.UUID | None = None
    write_recorded: bool = False

    @property
    def route(self) -> Any:
        """The route FastAPI matched (None before routing, or when nothing matched)."""
        return self.scope.get("route")

    @property
    def audited(self) -> bool:
        """Whether this request is an operation on patient data by an authenticated caller."""
        route = self.route
        tags = getattr(route, "tags", None) or []
        return bool(tags) and tags[0] in AUDITED_TAGS and self.principal is not None

    @property
    def principal(self) -> Principal | None:
        """The caller, once `authenticate` has authenticated them."""
        return self.scope.get("state", {}).get("principal")

    @property
    def is_write(self) -> bool:
        """Whether the operation changes data (every method but GET, HEAD and OPTIONS)."""
        return self.scope["method"] not in SAFE_METHODS

    @property
    def action(self) -> str:
        """The OpenAPI operation id, `patients.get` (the route in the scope is the router's own, which
        has not been given the app's ids)."""
        return operation_id(self.route)

    @property
    def resource_type(self) -> str:
        """The operation's resource, `patients`."""
        return self.action.split(".", 1)[0]

    @property
    def resource_table(self) -> str | None:
        """The table the resource's rows live in."""
        return RESOURCE_TABLES.get(self.resource_type)

    def note_written_row(self, row: Any, *, new: bool) -> None:
        """Remember which patient a row written by this request belongs to (and the id of a created one)."""
        table = getattr(getattr(row, "__table__", None), "name", None)
        patient = _uuid(row.id if table == "patients" else getattr(row, "patient_id", None))
        if patient is not None:
            self.written_patients.setdefault(patient, None)
        if new and self.created_id is None and table is not None and table == self.resource_table:
            self.created_id = _uuid(getattr(row, "id", None))

    def _ids(self, *, answered: bool) -> tuple[uuid.UUID | None, list[uuid.UUID]]:
        """The record's resource id and the patients it concerns: from the path, the query, the body, the
        rows written and (single records) the answer; UUIDs only, so nothing else of a request is kept."""
        params = self.scope.get("path_params", {})
        path_ids = [_uuid(v) for v in params.values()]
        resource_id = next((i for i in path_ids if i is not None), None) or self.created_id
        patients: dict[uuid.UUID, None] = {}

        def add(value: Any) -> None:
            found = _uuid(value)
            if found is not None:
                patients.setdefault(found, None)

        add(params.get("patient_id"))
        for name, value in _query_ids(self.scope):
            if name == "patient_id":
                add(value)
        if self.is_write:
            # Parsed only when it can name a patient: the endpoint has parsed it already.
            if any(b"patient_id" in chunk for chunk in self.request_body):
                for name, value in _json_object(self.request_body).items():
                    if name == "patient_id" or name.endswith("_patient_id"):
                        add(value)
            patients.update(self.written_patients)
        names_patient = self.resource_type == "patients" or any(
            b'"patient_id"' in chunk for chunk in self.response_body
        )
        if answered and self.response_body and names_patient:
            answer = _json_object(self.response_body)
            if self.resource_type == "patients":
                add(answer.get("id"))
                resource_id = resource_id or _uuid(answer.get("id"))
            add(answer.get("patient_id"))
        return resource_id, list(patients)

    def events(self, outcome: AuditOutcome, status: int | None, *, answered: bool) -> list[AuditEvent]:
        """The request's audit events: one per patient concerned (a merge names two), or one naming none."""
        principal = self.principal
        assert principal is not None
        action = self.action
        resource_id, patients = self._ids(answered=answered)
        client = self.scope.get("client")
        concerned: list[uuid.UUID | None] = [*patients] or [None]
        return [
            AuditEvent(
                tenant_id=principal.tenant_id,
                user_sub=principal.sub,
                user_roles=tuple(sorted(principal.roles)),
                action=action,
                resource_type=action.split(".", 1)[0],
                outcome=outcome,
                occurred_at=self.occurred_at,
                resource_id=resource_id,
                patient_id=patient,
                status_code=status,
                request_id=self.scope.get("state", {}).get("request_id"),
                client_address=client[0][:64] if client else None,
            )
            for patient in concerned
        ]

    def wants_response_body(self) -> bool:
        """Read the answer for its patient id: a single record (its route has a path parameter) whose
        patient the path does not name, answered 200 with JSON."""
        route = self.route
        return (
            self.status == 200
            and not self.is_write
            and route is not None
            and "{" in getattr(route, "path", "")
            and "patient_id" not in self.scope.get("path_params", {})
        )


def _query_ids(scope: Scope) -> list[tuple[str, str]]:
    raw = scope.get("query_string", b"")
    if b"patient_id" not in raw:
        return []
    return parse_qsl(raw.decode("latin-1"))


def trail_of(scope: Scope) -> AuditTrail | None:
    """The request's trail (None outside `AuditMiddleware`)."""
    trail = scope.get("state", {}).get(_TRAIL)
    return trail if isinstance(trail, AuditTrail) else None


def watch_writes(session: AsyncSession, scope: Scope) -> None:
    """Let the request's session tell the trail which rows it writes (see `record_write`)."""
    trail = trail_of(scope)
    if trail is not None and trail.is_write:
        session.info[_TRAIL] = trail


@event.listens_for(Session, "after_flush")
def _note_written_rows(session: Session, _context: Any) -> None:
    trail = session.info.get(_TRAIL)
    if trail is None:
        return
    for row in session.new:
        trail.note_written_row(row, new=True)
    for row in itertools.chain(session.dirty, session.deleted):
        trail.note_written_row(row, new=False)


def actor_of(request: Request, principal: Principal) -> Actor:
    """The caller of an administrative route, as the audit record of its change names them (routes whose
    records their service appends itself: integration clients, tenant settings)."""
    client = request.client
    return Actor(
        sub=principal.sub,
        roles=tuple(sorted(principal.roles)),
        request_id=getattr(request.state, "request_id", None),
        client_address=client.host[:64] if client else None,
    )


async def record_write(session: AsyncSession) -> None:
    """Append the request's audit record to its transaction, right before it commits (once per request):
    the write and its record commit together or not at all. Does nothing for reads and unaudited routes."""
    trail: AuditTrail | None = session.info.get(_TRAIL)
    if trail is None or trail.write_recorded or not trail.audited:
        return
    await session.flush()  # the rows still pending tell the trail their patients
    await append(session, trail.events(AuditOutcome.ALLOWED, None, answered=False))
    trail.write_recorded = True


class AuditMiddleware:
    """Open a trail for each request, watch its body and answer go by, and queue the record of a read or of
    a write that changed nothing once the answer is out (a committed write has recorded itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then queue its audit record if it has one to leave."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trail = AuditTrail(scope)
        scope.setdefault("state", {})[_TRAIL] = trail

        async def receive_watched() -> Message:
            message = await receive()
            if message["type"] == "http.request" and trail.is_write:
                trail.request_body.append(message.get("body", b""))
            return message

        async def send_watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                trail.status = message["status"]
                trail.peek_response = trail.wants_response_body()
            elif message["type"] == "http.response.body" and trail.peek_response:
                trail.response_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_watched, send_watched)
        except Exception:
            trail.status = trail.status or 500
            raise
        finally:
            self._queue(scope, trail)
            # The trail holds the scope and the scope the trail: without this, every request's scope (and
            # FastAPI's exit stacks in it) would be cyclic garbage, left for the collector to find.
            scope["state"].pop(_TRAIL, None)

    @staticmethod
    def _queue(scope: Scope, trail: AuditTrail) -> None:
        status = trail.status or 500
        # A committed write has its record; an error answered after the commit is worth a record too.
        if not trail.audited or (trail.write_recorded and status < 400):
            return
        buffer: AuditBuffer | None = getattr(scope["app"].state, "audit_buffer", None)
        if buffer is None:
            log.error("no audit buffer: the record of %s is lost", trail.action)
            return
        try:
            for audit_event in trail.events(outcome_of(status), status, answered=True):
                buffer.add(audit_event)
        except Exception:  # never turn a served answer into an error; say so loudly
            log.exception("could not queue the audit record of %s", trail.action)
