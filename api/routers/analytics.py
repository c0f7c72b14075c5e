"""Analytics API (`/analytics`): dashboard metrics computed in PostgreSQL, and the real-time stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette import EventSourceResponse

from api.deps import (
    CanRead,
    CurrentPrincipal,
    RawSessionDep,
    SessionDep,
    bearer,
    ensure_own_tenant,
    get_principal,
)
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.auth import Permission, Principal
from core.errors import Forbidden
from domain.analytics import realtime, service
from domain.analytics.periods import TimePeriod, Window
from domain.analytics.schemas import (
    AppointmentAnalyticsResponse,
    CommunicationAnalyticsResponse,
    DashboardOverviewResponse,
    JourneyAnalyticsResponse,
    RealtimeSnapshot,
    VoiceCallAnalyticsResponse,
)
from domain.schemas import Day

# Every route takes `tenant_id`, which must be the caller's own (403 otherwise).
router = APIRouter(
    prefix="/analytics", tags=["analytics"], responses={**AUTHENTICATED, **errors(forbidden=FOREIGN_TENANT)}
)
HEARTBEAT_SECONDS = 15
SHUTDOWN_GRACE_SECONDS = 5


async def analytics_window(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: Annotated[uuid.UUID | None, Query(description="Your own tenant (or omitted)")] = None,
    time_period: Annotated[TimePeriod, Query(description="Reporting period (tenant's time zone)")] = (
        TimePeriod.LAST_30_DAYS
    ),
    start_date: Annotated[Day | None, Query(description="CUSTOM period: first day (YYYY-MM-DD)")] = None,
    end_date: Annotated[Day | None, Query(description="CUSTOM period: last day (YYYY-MM-DD)")] = None,
) -> Window:
    """The period asked for, in the caller's tenant's time zone (422 for an unusable CUSTOM range)."""
    ensure_own_tenant(principal, tenant_id)
    return await service.tenant_window(session, principal.tenant_id, time_period, start_date, end_date)


WindowDep = Annotated[Window, Depends(analytics_window)]


@router.get("/dashboard", response_model=DashboardOverviewResponse, dependencies=[CanRead])
async def dashboard(
    session: SessionDep, principal: CurrentPrincipal, window: WindowDep
) -> DashboardOverviewResponse:
    """Every metric (appointments with breakdowns, journeys, communication, voice calls, tickets) in one
    response, for loading a dashboard."""
    return await service.dashboard(session, principal.tenant_id, window)


@router.get("/appointments", response_model=AppointmentAnalyticsResponse, dependencies=[CanRead])
async def appointment_analytics(
    session: SessionDep,
    principal: CurrentPrincipal,
    window: WindowDep,
    channel_origin: Annotated[str | None, Query(max_length=32, description="The booking channel")] = None,
    practitioner_id: uuid.UUID | None = None,
    include_breakdown: Annotated[
        bool, Query(description="Add by-day/status/channel/practitioner series")
    ] = False,
) -> AppointmentAnalyticsResponse:
    """Appointments starting in the period: counts by status, completion, no-show and cancellation rates."""
    return await service.appointment_analytics(
        session,
        principal.tenant_id,
        window,
        channel_origin=channel_origin,
        practitioner_id=practitioner_id,
        include_breakdown=include_breakdown,
    )


@router.get("/journeys", response_model=JourneyAnalyticsResponse, dependencies=[CanRead])
async def journey_analytics(
    session: SessionDep,
    principal: CurrentPrincipal,
    window: WindowDep,
    overdue_after_days: Annotated[int, Query(ge=1, le=365, description="Overdue: stage active longer")] = (
        service.DEFAULT_OVERDUE_DAYS
    ),
) -> JourneyAnalyticsResponse:
    """Journey instances: active and overdue now; started, completed, cancelled and failed in the period;
    completion rate and average time per stage."""
    return await service.journey_analytics(
        session, principal.tenant_id, window, overdue_after_days=overdue_after_days
    )


@router.get("/communication", response_model=CommunicationAnalyticsResponse, dependencies=[CanRead])
async def communication_analytics(
    session: SessionDep, principal: CurrentPrincipal, window: WindowDep
) -> CommunicationAnalyticsResponse:
    """Messages of the period: volumes by channel and status, delivery and read rates, the median time
    patients take to reply, and the sentiment of their messages."""
    return await service.communication_analytics(session, principal.tenant_id, window)


@router.get("/voice-calls", response_model=VoiceCallAnalyticsResponse, dependencies=[CanRead])
async def voice_call_analytics(
    session: SessionDep, principal: CurrentPrincipal, window: WindowDep
) -> VoiceCallAnalyticsResponse:
    """Voice calls of the period: counts by status and direction, answer rate, durations and quality."""
    return await service.voice_call_analytics(session, principal.tenant_id, window)


# ---- real time ------------------------------------------------------------------------------------


async def stream_principal(
    request: Request,
    response: Response,
    session: RawSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    access_token: Annotated[
        str | None,
        Query(description="The bearer token, for browsers' EventSource (which cannot send headers)"),
    ] = None,
) -> Principal:
    """The caller, from the Authorization header or (on this endpoint only) the `access_token` parameter."""
    if credentials is None and access_token:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=access_token)
    principal = await get_principal(request, response, session, credentials)
    if not principal.can(Permission.READ):
        raise Forbidden("Your role does not allow this (read).")
    return principal


@router.get(
    "/realtime",
    # Documents the stream as the 200's first content (the answer returned is built below either way);
    # the JSON snapshot is the alternative for clients that do not accept `text/event-stream`.
    response_class=EventSourceResponse,
    response_model=RealtimeSnapshot,
    response_description="A stream of `RealtimeSnapshot` JSON documents, one per `data:` line, with "
    "heartbeat comments; or, without `Accept: text/event-stream`, the current snapshot as JSON",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'data: {"date": "2026-12-01", "appointments_today": 12, ...}\n\n',
                },
                "application/json": {"schema": {"$ref": "#/components/schemas/RealtimeSnapshot"}},
            }
        }
    },
)
async def realtime_metrics(
    request: Request,
    principal: Annotated[Principal, Depends(stream_principal)],
    tenant_id: Annotated[uuid.UUID | None, Query(description="Your own tenant (or omitted)")] = None,
) -> Response:
    """Server-Sent Events: today's metrics snapshot now, and a fresh one whenever appointments, journeys,
    communications or tickets change (PostgreSQL LISTEN/NOTIFY), with heartbeats. Clients that do not
    accept `text/event-stream` get the current snapshot once, as JSON."""
    ensure_own_tenant(principal, tenant_id)
    if "text/event-stream" not in request.headers.get("accept", ""):
        snapshot = await realtime.snapshot_json(request.app.state.sessionmaker, principal.tenant_id)
        return Response(content=snapshot, media_type="application/json")
    listener: realtime.MetricsListener = request.app.state.metrics_listener
    shutting_down = anyio.Event()  # set by sse-starlette when the server begins to shut down

    async def events() -> AsyncIterator[dict[str, str]]:
        async with listener.subscribe(principal.tenant_id, until=shutting_down.wait) as snapshots:
            async for snapshot in snapshots:
                yield {"data": snapshot}

    return EventSourceResponse(
        events(),
        ping=HEARTBEAT_SECONDS,
        headers={"Cache-Control": "no-store"},
        # Ending the stream ourselves completes the response: no cut-off body, no error in the logs.
        shutdown_event=shutting_down,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )
