"""`prm audit ...`: checking the audit trail of patient data."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from cli.common import CliError, configure_cli_logging, database_url_or_fail, load_settings, run_db
from core.audit_key import audit_key
from core.database import make_engine, make_sessionmaker, mark_system

audit_app = typer.Typer(help="The audit trail of patient data.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    tenant_id: Annotated[
        uuid.UUID | None, typer.Option("--tenant-id", help="Only this tenant [default: every tenant].")
    ] = None,
) -> None:
    """Verify each tenant's chain of audit records (keyed with PRM_AUDIT_HMAC_KEY) and that every head
    anchored in PRM_AUDIT_ANCHOR_FILE is still in it. Intact: one line per tenant (its record count, head and
    anchors matched) and the total on stdout, exit 0. Broken: names the tenant and the first record that
    does not verify (or the anchor the trail contradicts), exit 1."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def check() -> int:
        from domain.audit.anchor import ForgedAnchor, read_anchors
        from domain.audit.repository import tenants_with_records
        from domain.audit.verify import verify_chain
        from domain.tenants.models import Tenant

        key = audit_key(settings)
        try:
            anchors = read_anchors(settings.audit_anchor_path, key)
        except ForgedAnchor as exc:
            raise CliError(f"audit anchor file: {exc}") from exc
        if not anchors:
            typer.echo(f"no anchors in {settings.audit_anchor_path}: only the chains are checked", err=True)
        engine = make_engine(url, settings)
        try:
            async with make_sessionmaker(engine)() as session:
                mark_system(session)
                if tenant_id is not None:
                    if tenant_id not in anchors and await session.get(Tenant, tenant_id) is None:
                        raise CliError(f"no tenant with id {tenant_id}")
                    tenants = [tenant_id]
                else:  # a tenant anchored but without records any more is checked too: its trail was cut
                    tenants = sorted({*await tenants_with_records(session), *anchors})
                total = 0
                for tenant in tenants:
                    report = await verify_chain(session, tenant, key, anchors.get(tenant))
                    if not report.intact:
                        where = f"record id {report.broken_record_id} " if report.broken_record_id else ""
                        raise CliError(
                            f"audit chain broken: tenant {tenant}, {where}(seq {report.broken_seq}): "
                            f"{report.reason}; the {report.records} record(s) before it verify"
                        )
                    typer.echo(
                        f"tenant {tenant}: {report.records} record(s) intact, head seq {report.head_seq} "
                        f"hash {report.head_hash}, {report.anchors} anchor(s) matched",
                        err=True,
                    )
                    total += report.records
                return total
        finally:
            await engine.dispose()

    total = run_db(url, check)
    typer.echo(str(total))
