"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.command import downgrade, upgrade
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from core.migrate import alembic_config
from domain.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_autogenerate_finds_no_difference_between_models_and_migrations(database_url: str) -> None:
    assert _diff(database_url) == []


def test_every_model_table_exists_after_upgrade(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_migrations_downgrade_to_base_and_back(database_url: str, tmp_path_factory: object) -> None:
    """Each migration's downgrade undoes its upgrade (run on a scratch database, not the suite's)."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(database_url)
    scratch = f"prm_mig_{uuid.uuid4().hex[:8]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    url = server.set(database=scratch).render_as_string(hide_password=False)
    try:
        cfg = alembic_config(url)
        upgrade(cfg, "head")
        downgrade(cfg, "base")
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        finally:
            engine.dispose()
        upgrade(cfg, "head")
        assert _diff(url) == []
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
