"""Journey instances' hottest reads, straight on psycopg (`core.reads`): the tenant filter is in every
statement, on every table it reads (tests/journeys/test_journey_reads.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from core.database import TENANT_PARAMETER
from core.reads import TenantRead, TenantReads
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage
from domain.journeys.repository import JourneyInstanceRepository
from domain.journeys.schemas import JourneyInstanceResponse, JourneyInstanceStageResponse

_TENANT = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
_ID = bindparam("instance_id", type_=PG_UUID(as_uuid=True))
_I, _J, _S = JourneyInstance.__table__.c, Journey.__table__.c, JourneyInstanceStage.__table__.c
_JOURNEY_NAME = (
    select(_J.name)
    .where(_J.id == _I.journey_id, _J.tenant_id == _TENANT)
    .scalar_subquery()
    .label("journey_name")
)
INSTANCE = TenantRead.of(
    select(*(_I[name] for name in JourneyInstanceResponse.model_fields), _JOURNEY_NAME).where(
        _I.id == _ID, _I.tenant_id == _TENANT
    )
)
STAGES = TenantRead.of(
    select(*(_S[name] for name in JourneyInstanceStageResponse.model_fields))
    .where(_S.instance_id == _ID, _S.tenant_id == _TENANT)
    .order_by(_S.order_index)
)


async def instance_with_stages(reads: TenantReads, instance_id: uuid.UUID) -> dict[str, Any]:
    """One instance of the tenant's, its journey's name and its stages in order (NotFound otherwise)."""
    instance = await reads.one_or_404(INSTANCE, JourneyInstanceRepository.label, instance_id=instance_id)
    return {**instance, "stages": await reads.all(STAGES, instance_id=instance_id)}
