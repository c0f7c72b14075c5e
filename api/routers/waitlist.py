"""Waitlist API (`/waitlist`): patients waiting for an earlier time, and the offers of freed times."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import (
    CanDelete,
    CanRead,
    CanWrite,
    CurrentPrincipal,
    SessionDep,
    commit_and_run_jobs,
    ensure_own_tenant,
)
from api.openapi import AUTHENTICATED, FOREIGN_TENANT, errors
from core.errors import Conflict
from core.pagination import PageDep
from domain.scheduling import backfill, waitlist
from domain.scheduling.waitlist_schemas import (
    OfferStatus,
    WaitlistEntryCreate,
    WaitlistEntryResponse,
    WaitlistListResponse,
    WaitlistOfferListResponse,
    WaitlistOfferResponse,
    WaitlistStatus,
)

router = APIRouter(prefix="/waitlist", tags=["waitlist"], responses=AUTHENTICATED)
NO_OFFER = "No such offer in your tenant"
NO_ENTRY = "No such waitlist entry in your tenant"


@router.post(
    "",
    response_model=WaitlistEntryResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    responses=errors(
        not_found="Unknown patient or practitioner",
        conflict="The patient record is not active (or was merged)",
        forbidden=FOREIGN_TENANT,
    ),
)
async def add_to_waitlist(
    body: WaitlistEntryCreate, session: SessionDep, principal: CurrentPrincipal
) -> WaitlistEntryResponse:
    """Put a patient on the waitlist for a practitioner or a speciality, within dates and a part of day.

    When a matching appointment is cancelled, its time is offered to waiting patients, oldest entry first.
    """
    ensure_own_tenant(principal, body.tenant_id)
    return WaitlistEntryResponse.model_validate(await waitlist.add_entry(session, body))


@router.get("", response_model=WaitlistListResponse, dependencies=[CanRead])
async def list_waitlist(
    session: SessionDep,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    speciality: Annotated[str | None, Query(max_length=100)] = None,
    status: WaitlistStatus | None = None,
) -> WaitlistListResponse:
    """List waitlist entries by patient, practitioner, speciality and status, oldest first."""
    repo = waitlist.WaitlistRepository(session)
    stmt = repo.filtered(
        patient_id=patient_id, practitioner_id=practitioner_id, speciality=speciality, status=status
    )
    rows, total = await repo.page(stmt, page)
    return WaitlistListResponse.build([WaitlistEntryResponse.model_validate(r) for r in rows], total, page)


@router.get("/offers", response_model=WaitlistOfferListResponse, dependencies=[CanRead])
async def list_waitlist_offers(
    session: SessionDep,
    page: PageDep,
    patient_id: uuid.UUID | None = None,
    cancelled_appointment_id: uuid.UUID | None = None,
    status: OfferStatus | None = None,
) -> WaitlistOfferListResponse:
    """List the offers of freed times, newest first (e.g. the open offers of a patient on the phone)."""
    repo = backfill.WaitlistOfferRepository(session)
    stmt = repo.filtered(
        patient_id=patient_id, cancelled_appointment_id=cancelled_appointment_id, status=status
    )
    rows, total = await repo.page(stmt, page)
    return WaitlistOfferListResponse.build(
        [WaitlistOfferResponse.model_validate(r) for r in rows], total, page
    )


@router.post(
    "/offers/{offer_id:record_id}/accept",
    response_model=WaitlistOfferResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_OFFER, conflict="The time was taken, or the offer expired or was declined"),
)
async def accept_waitlist_offer(offer_id: uuid.UUID, session: SessionDep) -> WaitlistOfferResponse:
    """Accept an offer for the patient (a coordinator on the phone): books the time, or 409 if it is gone."""
    offer = await waitlist.accept_offer(session, offer_id)
    if offer.status == OfferStatus.TAKEN.value:
        await commit_and_run_jobs(session)  # the wave was closed and told: keep that, then answer 409
        raise Conflict(backfill.CLOSED_OFFER[offer.status], extra={"offer_id": str(offer.id)})
    return WaitlistOfferResponse.model_validate(offer)


@router.post(
    "/offers/{offer_id:record_id}/decline",
    response_model=WaitlistOfferResponse,
    dependencies=[CanWrite],
    responses=errors(not_found=NO_OFFER, conflict="The offer was already accepted, taken or expired"),
)
async def decline_waitlist_offer(offer_id: uuid.UUID, session: SessionDep) -> WaitlistOfferResponse:
    """Pass on an offer for the patient; they stay on the waitlist and the next patients are offered it."""
    return WaitlistOfferResponse.model_validate(await waitlist.decline_offer(session, offer_id))


@router.get(
    "/{entry_id:record_id}",
    response_model=WaitlistEntryResponse,
    dependencies=[CanRead],
    responses=errors(not_found=NO_ENTRY),
)
async def get_waitlist_entry(entry_id: uuid.UUID, session: SessionDep) -> WaitlistEntryResponse:
    """One waitlist entry."""
    return WaitlistEntryResponse.model_validate(
        await waitlist.WaitlistRepository(session).get_or_404(entry_id)
    )


@router.delete(
    "/{entry_id:record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanDelete],
    responses=errors(not_found=NO_ENTRY, conflict="The entry was already booked"),
)
async def remove_from_waitlist(entry_id: uuid.UUID, session: SessionDep) -> Response:
    """Take a patient off the waitlist (the entry is kept as `removed`; an offer it holds is withdrawn)."""
    await waitlist.remove_entry(session, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
