"""The practitioners and locations an HL7 v2 message names (PV1-7 attending, AIP-3 personnel, PV1-3/AIL-3
locations), found by their identifiers (locations: by name) in our records. A scheduling message's unknown
practitioner (AIP-3) or location (AIL-3) is registered from what the message says, as the EHR knows it."""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import advisory_xact_lock
from domain.fhir.identifiers import PRACTITIONER_IDS
from domain.hl7.messages import ErrorCode, Hl7Error, Parsed, Segment
from domain.hl7.patients import default_system
from domain.practitioners import service as practitioners
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import PractitionerCreate
from domain.scheduling.models import Location
from domain.scheduling.repository import LocationRepository
from domain.scheduling.slot_schemas import LocationCreate
from domain.scheduling.slots import create_location
from domain.tenants.service import get_active_tenant


def practitioner_identifier(parsed: Parsed, segment: Segment, field: int) -> tuple[str, str] | None:
    """(system, value) of an XCN field: XCN-1 the id, XCN-9 the assigning authority."""
    value = segment.value(field, 1)
    if not value:
        return None
    system = segment.value(field, 9, 1, 1) or segment.value(field, 9, 1, 2) or default_system(parsed)
    return system[:255], value[:255]


async def find_practitioner(
    session: AsyncSession, parsed: Parsed, segment: Segment, field: int
) -> Practitioner | None:
    """The practitioner an XCN field names, by its identifier or (failing that) its licence number."""
    identifier = practitioner_identifier(parsed, segment, field)
    if identifier is None:
        return None
    practitioner_id = await PRACTITIONER_IDS.find(session, *identifier)
    if practitioner_id is None:
        practitioner_id = await session.scalar(
            select(Practitioner.id).where(Practitioner.license_number == identifier[1]).limit(1)
        )
    if practitioner_id is None:
        return None
    return await PractitionerRepository(session).get_or_404(practitioner_id)


async def practitioner_for(
    session: AsyncSession, parsed: Parsed, segment: Segment, field: int
) -> Practitioner:
    """The practitioner an XCN field names, registered from its name when unknown (and given its id)."""
    location = f"{segment.id}-{field}"
    found = await find_practitioner(session, parsed, segment, field)
    if found is not None:
        return found
    identifier = practitioner_identifier(parsed, segment, field)
    family, given = segment.value(field, 2), segment.value(field, 3)
    if identifier is None or not family or not given:
        raise Hl7Error(
            f"{location} names no practitioner known here (an id with family and given names registers one).",
            code=ErrorCode.UNKNOWN_KEY,
            location=location,
        )
    try:
        data = PractitionerCreate(
            first_name=given[:100], last_name=family[:100], middle_name=segment.value(field, 4)[:100] or None
        )
    except ValidationError as exc:
        raise Hl7Error(
            f"{location}: not a valid practitioner's name.", code=ErrorCode.DATA_TYPE, location=location
        ) from exc
    practitioner = await practitioners.create_practitioner(PractitionerRepository(session), data)
    await PRACTITIONER_IDS.add(session, practitioner.id, *identifier)
    return practitioner


def _location_names(segment: Segment, field: int) -> list[str]:
    """The names a PL field gives a location: its point of care (PL-1), then its facility (PL-4)."""
    return [name[:200] for name in (segment.value(field, 1), segment.value(field, 4, 1, 1)) if name]


async def find_location(session: AsyncSession, segment: Segment, field: int) -> uuid.UUID | None:
    """The location a PL field names by name (its point of care, PL-1, or facility, PL-4), if we have one."""
    for name in _location_names(segment, field):
        if name:
            found = await session.scalar(
                select(Location.id)
                .where(func.lower(Location.name) == name.lower())
                .order_by(Location.id)
                .limit(1)
            )
            if found is not None:
                return found
    return None


async def location_for(session: AsyncSession, segment: Segment, field: int) -> uuid.UUID | None:
    """The location a PL field names, registered under its point of care (else facility) name, in the
    tenant's time zone, when we have none by either name; None when the field names nothing."""
    names = _location_names(segment, field)
    if not names:
        return None
    tenant_id = session.info["tenant_id"]
    # Two messages naming one new location at once: the second waits, then finds the first one's.
    await advisory_xact_lock(session, f"hl7.location:{tenant_id}:{names[0].lower()}")
    found = await find_location(session, segment, field)
    if found is not None:
        return found
    tenant = await get_active_tenant(session, tenant_id)
    try:
        data = LocationCreate(name=names[0], timezone=tenant.timezone if tenant else "UTC")
    except ValidationError as exc:
        location = f"{segment.id}-{field}"
        raise Hl7Error(
            f"{location}: not a valid location's name.", code=ErrorCode.DATA_TYPE, location=location
        ) from exc
    return (await create_location(LocationRepository(session), data)).id
