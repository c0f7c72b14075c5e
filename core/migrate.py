"""Apply Alembic migrations programmatically (the CLI, `make run` and the tests use this)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from core.embedded_db import to_libpq_url

ROOT = Path(__file__).resolve().parent.parent
# The role the API and the worker connect as: made by migration 0024, it owns nothing and may only SELECT and
# INSERT the audit trail; migrations keep running as the owner.
APP_ROLE = "prm_app"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at this project's migrations and `database_url`."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema."""
    command.upgrade(alembic_config(database_url), "head")


@contextmanager
def scratch_database(
    server_url: str, prefix: str, *, migrate: bool = True, keep: bool = False
) -> Iterator[str]:
    """A throwaway database `<prefix>_<random>` beside `server_url`'s (migrated unless told not to)."""
    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = to_libpq_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade_to_head(url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def enable_app_role(owner_url: str, password: str | None = None) -> str:
    """Let `prm_app` log in (with `password` when given; trust or peer auth needs none), as the owner at
    `owner_url` after the migrations; the URL the API and the worker connect with: the owner's, as prm_app."""
    login = sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(APP_ROLE))
    if password:
        login = sql.SQL("{} PASSWORD {}").format(login, sql.Literal(password))
    with psycopg.connect(to_libpq_url(owner_url), autocommit=True) as conn:
        conn.execute(login)
    return make_url(owner_url).set(username=APP_ROLE, password=password).render_as_string(hide_password=False)
