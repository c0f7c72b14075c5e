"""one road to Temporal: workflow commands carry starts and cancels; the started-stamps go

`workflow_commands` carried signals (and signal-with-start). It now carries every start and cancel that
follows a change as well (`kind`: start, signal, cancel; `start_policy`: reuse, once, replace), and a command
may be held until `not_before` (a journey's send step holds its message's delivery start while it sends the
message itself). Starts recorded in the change's own transaction cannot be lost between the commit and
Temporal, so the stamps the reconciler looked for (`appointments.workflow_started_at`,
`journey_instances.workflow_started_at`, `tickets.sla_workflow_started_at`,
`communications.delivery_started_at` and its index) are dropped.

Rows whose start the old reconciler had not yet made (its stamp still null) get a start command here, so the
relay starts them once the new worker runs: active journey instances, active future appointments, unfinished
tickets and unsent outbound messages. Starting a workflow that already runs is harmless.

Revision ID: 0022_one_road_to_temporal
Revises: 0021_audit_chain_head
Create Date: 2026-12-06 19:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_one_road_to_temporal"
down_revision: str | None = "0021_audit_chain_head"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_REMINDER_OFFSETS = [24 * 60, 2 * 60]  # domain.tenants.schemas.TenantSettings' default


def upgrade() -> None:
    """Widen `workflow_commands`, record the starts still owed, drop the stamps."""
    op.add_column(
        "workflow_commands", sa.Column("kind", sa.String(10), nullable=False, server_default="signal")
    )
    op.create_check_constraint("kind", "workflow_commands", "kind IN ('start', 'signal', 'cancel')")
    op.alter_column("workflow_commands", "signal", nullable=True)
    op.alter_column("workflow_commands", "arg", nullable=True)
    op.add_column("workflow_commands", sa.Column("start_policy", sa.String(10), nullable=True))
    op.add_column("workflow_commands", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    _record_owed_starts()
    op.drop_index("ix_communications_undispatched", table_name="communications")
    op.drop_column("communications", "delivery_started_at")
    op.drop_column("appointments", "workflow_started_at")
    op.drop_column("journey_instances", "workflow_started_at")
    op.drop_column("tickets", "sla_workflow_started_at")


def _record_owed_starts() -> None:
    from domain.journeys.plan import WORKFLOW_NAME as JOURNEY_WORKFLOW
    from domain.journeys.plan import JourneyWorkflowInput, plan_from_snapshot

    bind = op.get_bind()
    commands: list[dict[str, object]] = []

    def owe(
        tenant: object, workflow: str, workflow_id: str, data: dict, attributes: dict, policy: str
    ) -> None:
        commands.append(
            {
                "tenant_id": tenant,
                "workflow_id": workflow_id,
                "start_workflow": workflow,
                "start_input": json.dumps(data),
                "search_attributes": json.dumps(attributes),
                "start_policy": policy,
            }
        )

    for row in bind.execute(
        sa.text(
            "SELECT id, tenant_id, patient_id, journey_id, status, workflow_id, definition_snapshot"
            " FROM journey_instances WHERE workflow_started_at IS NULL AND status = 'active'"
        )
    ):
        data = JourneyWorkflowInput(
            tenant_id=str(row.tenant_id),
            instance_id=str(row.id),
            patient_id=str(row.patient_id),
            journey_id=str(row.journey_id),
            stages=plan_from_snapshot(row.definition_snapshot or {}),
        )
        owe(
            row.tenant_id,
            JOURNEY_WORKFLOW,
            row.workflow_id or f"journey-instance-{row.id}",
            _plain(data),
            {
                "PrmTenantId": str(row.tenant_id),
                "PrmPatientId": str(row.patient_id),
                "PrmJourneyId": str(row.journey_id),
                "PrmInstanceStatus": row.status,
            },
            "once",
        )
    for row in bind.execute(
        sa.text(
            "SELECT a.id, a.tenant_id, a.patient_id, a.start_time, a.end_time, t.settings"
            " FROM appointments a JOIN tenants t ON t.id = a.tenant_id"
            " WHERE a.workflow_started_at IS NULL AND a.end_time > now()"
            " AND a.status IN ('booked', 'confirmed', 'checked_in')"
        )
    ):
        offsets = (row.settings or {}).get("reminder_offsets_minutes") or DEFAULT_REMINDER_OFFSETS
        data = {
            "tenant_id": str(row.tenant_id),
            "appointment_id": str(row.id),
            "start_time": row.start_time.isoformat(),
            "end_time": row.end_time.isoformat(),
            "reminder_offsets_minutes": list(offsets),
        }
        attributes = {"PrmTenantId": str(row.tenant_id), "PrmPatientId": str(row.patient_id)}
        owe(row.tenant_id, "AppointmentWorkflow", f"appointment-{row.id}", data, attributes, "reuse")
    for row in bind.execute(
        sa.text(
            "SELECT id, tenant_id, patient_id FROM tickets"
            " WHERE sla_workflow_started_at IS NULL AND status NOT IN ('resolved', 'closed')"
        )
    ):
        attributes = {"PrmTenantId": str(row.tenant_id)}
        if row.patient_id is not None:
            attributes["PrmPatientId"] = str(row.patient_id)
        data = {"tenant_id": str(row.tenant_id), "ticket_id": str(row.id)}
        owe(row.tenant_id, "TicketSlaWorkflow", f"ticket-{row.id}", data, attributes, "reuse")
    for row in bind.execute(
        sa.text(
            "SELECT id, tenant_id, patient_id FROM communications WHERE delivery_started_at IS NULL"
            " AND direction = 'outbound' AND status IN ('pending', 'scheduled', 'queued')"
            " AND provider_message_id IS NULL"
        )
    ):
        attributes = {"PrmTenantId": str(row.tenant_id)}
        if row.patient_id is not None:
            attributes["PrmPatientId"] = str(row.patient_id)
        data = {"tenant_id": str(row.tenant_id), "communication_id": str(row.id)}
        owe(
            row.tenant_id,
            "CommunicationDeliveryWorkflow",
            f"communication-{row.id}",
            data,
            attributes,
            "reuse",
        )
    if commands:
        bind.execute(
            sa.text(
                "INSERT INTO workflow_commands (tenant_id, kind, workflow_id, start_workflow, start_input,"
                " search_attributes, start_policy) VALUES (:tenant_id, 'start', :workflow_id,"
                " :start_workflow, CAST(:start_input AS jsonb), CAST(:search_attributes AS jsonb),"
                " :start_policy)"
            ),
            commands,
        )


def _plain(value: object) -> dict:
    import dataclasses

    return dataclasses.asdict(value)  # type: ignore[call-overload]


def downgrade() -> None:
    """Restore the stamps (as if every workflow had started) and the signal-only outbox."""
    op.add_column("tickets", sa.Column("sla_workflow_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "journey_instances", sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("appointments", sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "communications", sa.Column("delivery_started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute("UPDATE tickets SET sla_workflow_started_at = created_at")
    op.execute("UPDATE journey_instances SET workflow_started_at = created_at")
    op.execute("UPDATE appointments SET workflow_started_at = created_at")
    op.execute("UPDATE communications SET delivery_started_at = created_at")
    op.create_index(
        "ix_communications_undispatched",
        "communications",
        ["created_at"],
        postgresql_where=sa.text(
            "delivery_started_at IS NULL AND direction = 'outbound'"
            " AND status IN ('pending', 'scheduled', 'queued')"
        ),
    )
    op.execute("DELETE FROM workflow_commands WHERE kind <> 'signal' OR signal IS NULL")
    op.drop_column("workflow_commands", "not_before")
    op.drop_column("workflow_commands", "start_policy")
    op.alter_column("workflow_commands", "arg", nullable=False)
    op.alter_column("workflow_commands", "signal", nullable=False)
    op.drop_constraint("kind", "workflow_commands", type_="check")
    op.drop_column("workflow_commands", "kind")
