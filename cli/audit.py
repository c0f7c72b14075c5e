"""`prm audit ...`: checking the audit trail of patient data."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from cli.common import CliError, configure_cli_logging, database_url_or_fail, load_settings, run_db
from core.database import make_engine, make_sessionmaker, mark_system

audit_app = typer.Typer(help="The audit trail of patient data.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    tenant_id: Annotated[
        uuid.UUID | None, typer.Option("--tenant-id", help="Only this tenant [default: every tenant].")
    ] = None,
) -> None:
    """Verify each tenant's hash chain of audit records. Intact: one line per tenant (its record count and
    head, worth noting to catch a trail cut short later) and the total on stdout, exit 0. Broken: names
    the tenant and the first record that does not verify, exit 1."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def check() -> int:
        from domain.audit.repository import tenants_with_records
        from domain.audit.verify import verify_chain
        from domain.tenants.models import Tenant

        engine = make_engine(url, settings)
        try:
            async with make_sessionmaker(engine)() as session:
                mark_system(session)
                if tenant_id is not None:
                    if await session.get(Tenant, tenant_id) is None:
                        raise CliError(f"no tenant with id {tenant_id}")
                    tenants = [tenant_id]
                else:
                    tenants = await tenants_with_records(session)
                total = 0
                for tenant in tenants:
                    report = await verify_chain(session, tenant)
                    if not report.intact:
                        raise CliError(
                            f"audit chain broken: tenant {tenant}, record id {report.broken_record_id} "
                            f"(seq {report.broken_seq}): {report.reason}; the {report.records} record(s) "
                            "before it verify"
                        )
                    typer.echo(
                        f"tenant {tenant}: {report.records} record(s) intact, head seq {report.head_seq} "
                        f"hash {report.head_hash}",
                        err=True,
                    )
                    total += report.records
                return total
        finally:
            await engine.dispose()

    total = run_db(url, check)
    typer.echo(str(total))
