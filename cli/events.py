"""`prm events ...`: the domain events the trigger dispatcher set aside, listed and retried by an operator."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from cli.common import (
    CliError,
    configure_cli_logging,
    database_url_or_fail,
    load_settings,
    run_db,
    system_session,
)

events_app = typer.Typer(
    help="Domain events the journeys' trigger dispatcher set aside after repeated failures.",
    no_args_is_help=True,
)


@events_app.command("set-aside")
def set_aside(
    tenant_id: Annotated[
        uuid.UUID | None, typer.Option("--tenant-id", help="Only this tenant [default: every tenant].")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 100,
) -> None:
    """List the set-aside events, oldest first, one per line on stdout: id, tenant, type, attempts, the
    error's class and when it occurred (ids and types only: no patient data)."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def listed() -> list[str]:
        from domain.journeys.set_aside import set_aside_events

        async with system_session(settings, url) as session:
            events = await set_aside_events(session, tenant_id=tenant_id, limit=limit)
            return [
                f"{e.id}\t{e.tenant_id}\t{e.type}\t{e.dispatch_attempts}\t{e.dispatch_error}\t"
                f"{e.occurred_at.isoformat()}"
                for e in events
            ]

    lines = run_db(url, listed)
    for line in lines:
        typer.echo(line)
    typer.echo(f"{len(lines)} set-aside event(s)", err=True)


@events_app.command("retry")
def retry(event_id: Annotated[int, typer.Argument(help="The id of a set-aside event.", min=1)]) -> None:
    """Put a set-aside event back in the dispatcher's queue (its attempts start again from zero): do it once
    the cause is fixed. Exit 1 when there is no such event or it is not set aside."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def put_back() -> str:
        from domain.journeys.set_aside import NotSetAside, retry_event

        async with system_session(settings, url) as session:
            try:
                event = await retry_event(session, event_id)
            except NotSetAside:
                raise CliError(
                    f"event {event_id} is not set aside (dispatched, or still waiting for the dispatcher)"
                ) from None
            if event is None:
                raise CliError(f"no event with id {event_id}")
            return event.type

    event_type = run_db(url, put_back)
    typer.echo(f"event {event_id} ({event_type}) is queued for the trigger dispatcher again", err=True)
