"""The reference's pagination envelope, and the one place that pages a query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000  # (page - 1) * page_size must stay far inside PostgreSQL's bigint OFFSET


@dataclass(frozen=True)
class PageParams:
    """`page` (1-indexed) and `page_size` (max 100) from the query string."""

    page: int = 1
    page_size: int = 20

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.page_size


def page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number (1-indexed)")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (max 100)")] = 20,
) -> PageParams:
    """Read the pagination parameters; out-of-range values are 422."""
    return PageParams(page=page, page_size=page_size)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """`items, total, page, page_size, has_next, has_previous`."""

    items: list[T]
    total: int
    page: int
    page_size: int
    has_next: bool
    has_previous: bool

    @classmethod
    def build(cls, items: list[T], total: int, params: PageParams) -> Self:
        """Wrap one page of items with its position in the whole."""
        return cls(
            items=items,
            total=total,
            page=params.page,
            page_size=params.page_size,
            has_next=params.offset + len(items) < total,
            has_previous=params.page > 1,
        )


async def paginate(session: AsyncSession, stmt: Select[Any], params: PageParams) -> tuple[list[Any], int]:
    """Run `stmt` for one page and count the whole result set; returns (rows, total)."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await session.scalars(stmt.limit(params.page_size).offset(params.offset))).all()
    return list(rows), int(total or 0)
