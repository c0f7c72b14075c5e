"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.command import downgrade, upgrade
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from core.migrate import alembic_config, scratch_database
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


def test_migrations_downgrade_to_base_and_back(database_url: str) -> None:
    """Each migration's downgrade undoes its upgrade (run on a scratch database, not the suite's)."""
    with scratch_database(database_url, "prm_mig", migrate=False) as url:
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
