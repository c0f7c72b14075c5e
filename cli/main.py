"""`prm`: the service's command line. Values scripts read (ids, tokens) go to stdout, all else to stderr."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.analytics import analytics_app
from cli.audit import audit_app
from cli.commands import commands_app
from cli.common import (
    EXIT_BAD_INPUT,
    CliError,
    cli_actor,
    configure_cli_logging,
    database_url_or_fail,
    describe_database,
    fail,
    load_settings,
    run_db,
    system_session,
)
from cli.events import events_app
from cli.hl7 import hl7_app
from cli.integration import integration_app
from core.auth import Role, issue_dev_token
from core.languages import ENGLISH
from core.languages import normalise as normalise_language
from core.migrate import APP_ROLE, enable_app_role, upgrade_to_head
from core.settings import Settings
from domain.tenants.schemas import TenantCreate, TenantSettings, validate_timezone

if TYPE_CHECKING:
    from core.gateway import WorkflowGateway

app = typer.Typer(
    name="prm",
    help="Patient Relationship Management service: run the stack, manage tenants, mint development tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tenant_app = typer.Typer(help="Manage tenants (clinics).", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(db_app, name="db")
app.add_typer(analytics_app, name="analytics")
app.add_typer(audit_app, name="audit")
app.add_typer(integration_app, name="integration")
app.add_typer(hl7_app, name="hl7")
app.add_typer(events_app, name="events")
app.add_typer(commands_app, name="commands")


def _timezone(value: str) -> str:
    try:
        return validate_timezone(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _language(value: str) -> str:
    try:
        return normalise_language(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} {exc}") from exc


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option("--name", help="The clinic's name.")],
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            callback=lambda v: v and _timezone(v),
            help="IANA time zone, e.g. Europe/London (default: PRM_DEFAULT_TIMEZONE).",
        ),
    ] = None,
    language: Annotated[
        str,
        typer.Option(
            "--language",
            callback=_language,
            help="The clinic's default message language (BCP 47, e.g. es or es-MX): used when a patient's "
            "preferred language has no template.",
        ),
    ] = ENGLISH,
) -> None:
    """Create a tenant and print its id (alone) on stdout."""
    if not name.strip():
        fail("--name must not be empty", EXIT_BAD_INPUT)
    settings = load_settings()
    try:
        data = TenantCreate(
            name=name.strip(),
            timezone=timezone or settings.default_timezone,
            settings=TenantSettings(default_language=language),
        )
    except ValueError:
        fail("PRM_DEFAULT_TIMEZONE is not an IANA time zone", EXIT_BAD_INPUT)
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def create() -> uuid.UUID:
        from domain.tenants.service import create_tenant

        async with system_session(settings, url) as session:
            tenant = await create_tenant(session, data)
        return tenant.id

    tenant_id = run_db(url, create)
    typer.echo(str(tenant_id))


@tenant_app.command("set-language")
def tenant_set_language(
    tenant_id: Annotated[uuid.UUID, typer.Option("--tenant-id", help="The tenant to change.")],
    language: Annotated[
        str,
        typer.Option(
            "--language",
            callback=_language,
            help="The clinic's new default message language (BCP 47, e.g. es or es-MX).",
        ),
    ],
) -> None:
    """Change a tenant's default message language (recorded in its audit trail as `cli:<user>`) and print
    the stored tag (normalised: `ES-mx` is stored as `es-MX`) on stdout."""
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def change() -> str:
        from core.errors import NotFound
        from domain.tenants.service import set_default_language, settings_of

        try:
            async with system_session(settings, url) as session:
                tenant = await set_default_language(
                    session, tenant_id, language, by=cli_actor(), loc=("language",)
                )
                return settings_of(tenant).default_language
        except NotFound as exc:
            raise CliError(f"no tenant with id {tenant_id} in the {describe_database(url)}") from exc

    typer.echo(run_db(url, change))


@app.command("token")
def token(
    tenant_id: Annotated[uuid.UUID, typer.Option("--tenant-id", help="The tenant the token acts for.")],
    role: Annotated[Role, typer.Option("--role", help="What the bearer may do.", case_sensitive=False)],
    sub: Annotated[str, typer.Option("--sub", help="The user the token names.")] = "dev-user",
    ttl_minutes: Annotated[
        int | None,
        typer.Option("--ttl-minutes", min=1, help="Lifetime [default: PRM_DEV_TOKEN_TTL_MINUTES]."),
    ] = None,
) -> None:
    """Print a bearer token (alone) on stdout, signed with the configured development secret."""
    if not sub.strip():
        fail("--sub must not be empty", EXIT_BAD_INPUT)
    settings = load_settings()
    configure_cli_logging(settings)
    if not settings.jwt_algorithm.startswith("HS"):
        fail(f"PRM_JWT_ALGORITHM is {settings.jwt_algorithm}: development tokens need an HS* secret")
    ttl = timedelta(minutes=ttl_minutes) if ttl_minutes else None
    try:  # printed only once the tenant is known to be active
        minted = issue_dev_token(settings, tenant_id=tenant_id, roles=[role], sub=sub.strip(), ttl=ttl)
    except ValueError as exc:  # longer than the API accepts
        fail(f"--ttl-minutes: {exc}", EXIT_BAD_INPUT)
    url = database_url_or_fail(settings)

    async def check_tenant() -> None:
        from domain.tenants.service import get_active_tenant

        async with system_session(settings, url) as session:
            if await get_active_tenant(session, tenant_id) is None:
                raise CliError(f"no active tenant with id {tenant_id} in the {describe_database(url)}")

    run_db(url, check_tenant)
    typer.echo(minted)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = load_settings()
    configure_cli_logging(settings, quiet=False)
    url = database_url_or_fail(settings)
    try:
        upgrade_to_head(url)
    except Exception as exc:
        fail(f"migrating the {describe_database(url)} failed: {exc}")
    typer.echo(f"The {describe_database(url)} is at the newest schema.", err=True)


@db_app.command("app-role")
def db_app_role() -> None:
    """Let the role the API and the worker connect as (`prm_app`: made by the migrations, it owns nothing and
    may only read and append the audit trail) log in, with PRM_APP_DB_PASSWORD when set. Run it as the
    owner, after `prm db upgrade`; then point the API's and the worker's DATABASE_URL at user prm_app."""
    settings = load_settings()
    configure_cli_logging(settings, quiet=False)
    url = database_url_or_fail(settings)
    try:
        enable_app_role(url, settings.app_db_password)
    except Exception as exc:
        fail(f"letting {APP_ROLE} log in to the {describe_database(url)} failed: {exc}")
    typer.echo(f"{APP_ROLE} may log in to the {describe_database(url)}.", err=True)


async def temporal_if_reachable(settings: Settings) -> WorkflowGateway | None:
    """A gateway to the configured Temporal if it answers within a few seconds, else None."""
    from cli.readiness import temporal_gateway

    try:
        async with asyncio.timeout(5):
            return await temporal_gateway(settings)
    except TimeoutError:
        return None


@app.command("seed")
def seed(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Seed the whole demo clinic (100 patients, appointments, journeys, messages, tickets) "
            "instead of 3 practitioners and 5 patients.",
        ),
    ] = False,
) -> None:
    """Seed the demo tenant when the database has no tenant; print the demo tenant's id."""
    from cli.seed import seed_and_commit

    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def do_seed() -> tuple[uuid.UUID | None, bool, bool]:
        gateway = await temporal_if_reachable(settings) if demo else None
        async with system_session(settings, url) as session:
            outcome = await seed_and_commit(session, demo=demo, gateway=gateway)
        return outcome.tenant_id, outcome.created, gateway is not None

    tenant_id, created, with_temporal = run_db(url, do_seed)
    if created:
        typer.echo("Seeded the demo tenant.", err=True)
        if demo and not with_temporal:
            typer.echo(
                "Temporal is not reachable: the worker's relay starts the demo's workflows once it runs.",
                err=True,
            )
    elif tenant_id is not None:
        typer.echo("The database already has tenants: not seeding again.", err=True)
    else:
        typer.echo("The database already has tenants (none is the demo tenant): not seeding.", err=True)
        return
    typer.echo(str(tenant_id))


@app.command("run")
def run(
    api_port: Annotated[int | None, typer.Option(help="API port [default: PRM_API_PORT or 8000].")] = None,
    api_host: Annotated[str | None, typer.Option(help="API address [default: PRM_API_HOST].")] = None,
    temporal_port: Annotated[
        int | None, typer.Option(help="Temporal gRPC port [default: PRM_TEMPORAL_PORT or 7233].")
    ] = None,
    temporal_ui_port: Annotated[
        int | None, typer.Option(help="Temporal UI port [default: PRM_TEMPORAL_UI_PORT or 8233].")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Embedded database and Temporal state [default: PRM_DATA_DIR or .prm]."),
    ] = None,
) -> None:
    """Run the whole stack in the foreground (database, Temporal, worker, API); Ctrl-C stops it all."""
    from cli.stack import run_stack

    settings = load_settings(
        api_port=api_port,
        api_host=api_host,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        data_dir=data_dir,
    )
    configure_cli_logging(settings, quiet=False)
    raise typer.Exit(run_stack(settings))


@app.command("worker")
def worker() -> None:
    """Run the Temporal worker in the foreground (what `python worker.py` does)."""
    import worker as worker_module

    settings = load_settings()
    raise typer.Exit(worker_module.main(settings))


@app.command("api")
def api(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: PRM_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [default: PRM_API_PORT].")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the API with uvicorn in the foreground."""
    import uvicorn

    settings = load_settings(api_host=host, api_port=port)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        reload=reload,
        timeout_graceful_shutdown=10,
        http="httptools",  # the flags of `prm run` (cli.stack.uvicorn_argv)
        loop="uvloop",
        access_log=False,  # the app writes its own (`prm.access`)
        server_header=False,  # `server: uvicorn` tells a scanner what to try
    )


def main() -> None:
    """Entry point for `python -m cli.main`."""
    app()


if __name__ == "__main__":
    main()
