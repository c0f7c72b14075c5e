"""Cohorts: named, declarative sets of patients that campaigns are sent to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped


class Cohort(TenantScoped, Base):
    """A saved patient selection: its `criteria` (`domain.cohorts.schemas.CohortCriteria`) are evaluated when
    asked (`domain.cohorts.criteria.members_query`), never stored as a member list.

    The name is unique per tenant, ignoring case. Deleting a cohort removes the row for good (hard delete):
    a cohort a campaign names is refused (409; `campaigns.cohort_id` is RESTRICT besides)."""

    __tablename__ = "cohorts"
    __table_args__ = (Index("uq_cohorts_tenant_name", "tenant_id", text("lower(name)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
