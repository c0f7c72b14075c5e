"""The base repository: tenant scoping already applies (see core.database), so this adds fetch-or-404."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import TenantScoped, prebuilt
from core.errors import NotFound
from core.pagination import PageParams, paginate

ModelT = TypeVar("ModelT", bound=TenantScoped)


class Repository(Generic[ModelT]):
    """Queries for one model. Every statement built here is filtered to the session's tenant."""

    model: type[ModelT]
    label: str = "Record"

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def base(self) -> Select[ModelT]:
        """SELECT over the model (the tenant filter is added on execution)."""
        return select(self.model)

    async def get(self, record_id: uuid.UUID) -> ModelT | None:
        """The record, or None when it does not exist for this tenant."""
        if type(self).base is not Repository.base:  # a repository with a base of its own
            return await self.session.scalar(self.base().where(self.model.id == record_id))
        return await self.session.scalar(_by_id(self.model), {"record_id": record_id})

    async def get_or_404(self, record_id: uuid.UUID) -> ModelT:
        """The record, or NotFound (the same answer whether it is missing or another tenant's)."""
        record = await self.get(record_id)
        if record is None:
            raise NotFound(f"{self.label} not found.")
        return record

    async def page(self, stmt: Select[Any], params: PageParams) -> tuple[list[ModelT], int]:
        """One page of `stmt` and the total count."""
        return await paginate(self.session, stmt, params)

    async def add(self, record: ModelT) -> ModelT:
        """Insert `record` and flush so constraint violations surface now."""
        self.session.add(record)
        return await self.save(record)

    async def save(self, record: ModelT) -> ModelT:
        """Flush pending changes to `record`; the columns the database set come back with the statement
        (`eager_defaults`, core.database.Base), and only what is still unknown is read again."""
        await self.session.flush()
        expired = inspect(record).expired_attributes
        if expired:
            await self.session.refresh(record, attribute_names=sorted(expired))
        return record

    async def delete(self, record: ModelT) -> None:
        """Remove `record` permanently."""
        await self.session.delete(record)
        await self.session.flush()


_BY_ID: dict[type[TenantScoped], Select[Any]] = {}


def _by_id(model: type[TenantScoped]) -> Select[Any]:
    """`SELECT model WHERE id = :record_id`, built once per model (the tenant filter is added when run)."""
    stmt = _BY_ID.get(model)
    if stmt is None:
        stmt = _BY_ID[model] = prebuilt(select(model).where(model.id == bindparam("record_id")))
    return stmt
