"""Campaigns and their members.

A campaign enrols the patients of a cohort into a journey. Its members are frozen when it starts (one row
per patient, `uq_campaign_members_campaign_patient`), so later changes to the cohort's patients or criteria
never change who a running campaign reaches; each member is then enrolled once, the journey instance's
idempotency key (`campaign:<campaign>:<patient>`) making the database the judge.

A recurring campaign (`every_days` set) is a definition: it reaches no one itself; each time its Temporal
Schedule fires, an occurrence is launched, a campaign like any other that names its definition and the
time it was scheduled for (`uq_campaigns_definition_scheduled_for`: one run per fire, whatever retries).
"""

from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped
from domain.campaigns.plan import CampaignStatus, MemberState, SkipReason
from domain.enums import sql_in


class Campaign(TenantScoped, Base):
    """A cohort enrolled into a journey by one workflow (`campaign-<id>`), paced, inside a daily window."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(CampaignStatus)})", name="status"),
        CheckConstraint("pace_per_minute IS NULL OR pace_per_minute > 0", name="pace_positive"),
        CheckConstraint("(journey_id IS NULL) <> (channel IS NULL)", name="journey_or_message"),
        CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)", name="send_window_both_or_neither"
        ),
        CheckConstraint("every_days IS NULL OR every_days >= 1", name="every_days_positive"),
        CheckConstraint(
            "cooldown_days IS NULL OR (every_days IS NOT NULL AND cooldown_days >= 0)",
            name="cooldown_of_a_definition",
        ),
        CheckConstraint(
            "(definition_id IS NULL) = (scheduled_for IS NULL)"
            " AND (definition_id IS NULL OR every_days IS NULL)",
            name="occurrence_of_a_definition",
        ),
        Index(
            "uq_campaigns_definition_scheduled_for",
            "definition_id",
            "scheduled_for",
            unique=True,
            postgresql_where=text("definition_id IS NOT NULL"),
        ),
        Index(
            "uq_campaigns_tenant_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    cohort_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("cohorts.id", ondelete="RESTRICT"), nullable=False
    )
    journey_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journeys.id", ondelete="RESTRICT")
    )
    # A one-off message instead of a journey: its channel, and a template or literal text.
    channel: Mapped[str | None] = mapped_column(String(16))
    template_name: Mapped[str | None] = mapped_column(String(100))
    message_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=CampaignStatus.SCHEDULED.value)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_window_start: Mapped[time | None] = mapped_column(Time)
    send_window_end: Mapped[time | None] = mapped_column(Time)
    pace_per_minute: Mapped[int | None] = mapped_column(Integer)
    member_count: Mapped[int | None] = mapped_column(Integer)  # set when the members are frozen
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_batch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # progress: a notify
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # A recurring campaign (a definition): an occurrence every `every_days` days, skipping the patients one
    # of its occurrences reached in the last `cooldown_days` days.
    every_days: Mapped[int | None] = mapped_column(Integer)
    cooldown_days: Mapped[int | None] = mapped_column(Integer)
    # An occurrence: its definition, and the time its schedule fired for.
    definition_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def recurring(self) -> bool:
        """Whether this is a recurring campaign's definition (it has a schedule, not members)."""
        return self.every_days is not None


class CampaignMember(TenantScoped, Base):
    """One patient of a campaign, and what became of them."""

    __tablename__ = "campaign_members"
    __table_args__ = (
        UniqueConstraint("campaign_id", "patient_id", name="uq_campaign_members_campaign_patient"),
        CheckConstraint(f"state IN ({sql_in(MemberState)})", name="state"),
        CheckConstraint(f"skip_reason IS NULL OR skip_reason IN ({sql_in(SkipReason)})", name="skip_reason"),
        # The next batch: a campaign's pending members in patient order, read from a small index.
        Index(
            "ix_campaign_members_pending",
            "campaign_id",
            "patient_id",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=MemberState.PENDING.value)
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    journey_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journey_instances.id", ondelete="SET NULL")
    )
    communication_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("communications.id", ondelete="SET NULL")
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
