"""`prm commands ...`: the workflow commands (starts, signals, cancels) still waiting for Temporal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.common import configure_cli_logging, database_url_or_fail, load_settings, run_db, system_session

commands_app = typer.Typer(
    help="Workflow commands recorded with database changes and not yet delivered to Temporal.",
    no_args_is_help=True,
)


@commands_app.command("pending")
def pending(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="List at most this many.")] = 50,
) -> None:
    """List the undelivered commands, oldest first, one per line on stdout: id, tenant, kind, workflow id,
    signal, attempts, the last error's class, age in seconds and (for a held one) seconds until it is due.
    On stderr: how many wait and the age of the oldest due one. Ids and names only: no patient data.

    Commands wait while Temporal is unreachable and go within seconds of its return; one that waits with
    attempts and an error while Temporal is up is stuck (its error says why), and holds back the later
    commands of its workflow."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def listed() -> tuple[list[str], int, float]:
        from core.workflow_commands import pending_commands, pending_summary

        async with system_session(settings, url) as session:
            summary = await pending_summary(session)
            commands = await pending_commands(session, limit=limit)
        now = datetime.now(UTC)
        lines = [
            "\t".join(
                [
                    str(c.id),
                    str(c.tenant_id),
                    c.kind,
                    c.workflow_id,
                    c.signal or "-",
                    str(c.attempts),
                    c.last_error or "-",
                    f"{(now - c.created_at).total_seconds():.0f}",
                    f"{(c.not_before - now).total_seconds():.0f}"
                    if c.not_before and c.not_before > now
                    else "-",
                ]
            )
            for c in commands
        ]
        return lines, summary.count, summary.oldest_seconds

    lines, count, oldest = run_db(url, listed)
    for line in lines:
        typer.echo(line)
    typer.echo(f"{count} pending workflow command(s); the oldest due one waits for {oldest:.0f} s", err=True)
