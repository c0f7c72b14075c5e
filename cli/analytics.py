"""`prm analytics ...`: analytics upkeep that stays off the request path."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy import select

from cli.common import CliError, configure_cli_logging, database_url_or_fail, load_settings, run_db
from core.database import make_engine, make_sessionmaker, mark_system

analytics_app = typer.Typer(help="Analytics upkeep (sentiment backfill).", no_args_is_help=True)


@analytics_app.command("backfill-sentiment")
def backfill_sentiment(
    tenant_id: Annotated[
        uuid.UUID | None, typer.Option("--tenant-id", help="Only this tenant [default: every tenant].")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Messages scored per transaction.")
    ] = 500,
) -> None:
    """Score the inbound messages that have no sentiment score yet (newest first, one transaction per
    batch, safe to interrupt and run again); print how many were scored on stdout."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def backfill() -> int:
        from domain.analytics.sentiment import score_unscored
        from domain.tenants.models import Tenant

        engine = make_engine(url, settings)
        sessionmaker = make_sessionmaker(engine)
        total = 0
        try:
            async with sessionmaker() as session:
                mark_system(session)
                query = select(Tenant.id).order_by(Tenant.id)
                tenants = list(
                    await session.scalars(query.where(Tenant.id == tenant_id) if tenant_id else query)
                )
            if tenant_id and not tenants:
                raise CliError(f"no tenant with id {tenant_id}")
            for tenant in tenants:
                scored, end = 0, None
                while True:
                    async with sessionmaker() as session:
                        mark_system(session)
                        batch = await score_unscored(session, tenant, end=end, cap=batch_size)
                        await session.commit()
                    scored += batch.scored
                    if batch.found < batch_size or batch.oldest is None:
                        break
                    # Messages created at the same instant as the oldest one may straddle two batches.
                    end = batch.oldest + timedelta(microseconds=1)
                typer.echo(f"tenant {tenant}: scored {scored} message(s)", err=True)
                total += scored
        finally:
            await engine.dispose()
        return total

    scored = run_db(url, backfill)
    typer.echo(str(scored))
