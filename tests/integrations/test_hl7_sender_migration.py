"""Migration 0030: the HL7 messages stored before it take their sender (MSH-3, MSH-4) from the ACK they were
answered with, so a resend of one of them is still recognised once control ids are unique per sender."""

from __future__ import annotations

import uuid

from alembic.command import downgrade, upgrade
from sqlalchemy import create_engine, pool, text

from core.migrate import alembic_config, scratch_database

BEFORE, AFTER = "0029_fhir_versions_smart", "0030_hl7_feed_realism"
ACK = "MSH|^~\\&|PRM|CLINIC|EPIC^1.2.840^ISO|GENHOSP|20261201120001||ACK^A04^ACK|ACK1|P|2.5.1\rMSA|AA|MSG-1\r"


def test_stored_messages_take_their_sender_from_their_ack(database_url: str) -> None:
    with scratch_database(database_url, "prm_mig28") as url:
        cfg = alembic_config(url)
        downgrade(cfg, BEFORE)
        engine = create_engine(url, poolclass=pool.NullPool)
        tenant = uuid.uuid4()
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, timezone, settings, is_active) "
                        "VALUES (:id, 'T', 'UTC', '{}', true)"
                    ),
                    {"id": tenant},
                )
                conn.execute(
                    text(
                        "INSERT INTO hl7_messages "
                        "(id, tenant_id, control_id, message_type, digest, ack_code, ack) "
                        "VALUES (:id, :tenant, 'MSG-1', 'ADT^A04', 'd', 'AA', :ack)"
                    ),
                    {"id": uuid.uuid4(), "tenant": tenant, "ack": ACK},
                )
            upgrade(cfg, AFTER)
            with engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT sending_application, sending_facility FROM hl7_messages "
                        "WHERE control_id = 'MSG-1'"
                    )
                ).one()
        finally:
            engine.dispose()
    assert tuple(row) == ("EPIC", "GENHOSP")
