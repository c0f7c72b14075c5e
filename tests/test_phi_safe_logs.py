"""Logs never quote patient data: a failed statement's values and an exception's text stay out, with the
engine and the formatter the API, the worker and the CLI use, against the real PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.database import make_engine
from core.errors import NotFound
from core.logging import FORMAT, JsonFormatter, PhiSafeFormatter, format_exception_safely

PHI_EMAIL = "jane.phi-doe@example.test"
PHI_PHONE = "+14155550199"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the process's log handler writes, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PhiSafeFormatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def _failed_write(database_url: str, settings) -> IntegrityError:
    """A statement the database refuses, whose error quotes the patient's email and phone."""
    engine = make_engine(database_url, settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TEMP TABLE contacts (email text UNIQUE, phone text)"))
            row = {"email": PHI_EMAIL, "phone": PHI_PHONE}
            await conn.execute(text("INSERT INTO contacts VALUES (:email, :phone)"), row)
            await conn.execute(text("INSERT INTO contacts VALUES (:email, :phone)"), row)
    except IntegrityError as exc:
        return exc
    finally:
        await engine.dispose()
    raise AssertionError("the second insert was accepted")


async def test_a_failed_statement_is_logged_without_its_values(database_url, settings, captured) -> None:
    error = await _failed_write(database_url, settings)
    assert PHI_PHONE not in str(error)  # the engine hides bound parameters
    try:
        raise RuntimeError("the request failed") from error
    except RuntimeError:
        logging.getLogger("prm.test").exception("unexpected error, request %s", uuid.uuid4())
    logged = captured.getvalue()
    assert "IntegrityError" in logged and "sqlstate 23505" in logged  # still says what went wrong
    assert "contacts_email_key" in logged
    assert PHI_EMAIL not in logged and PHI_PHONE not in logged


def test_any_other_exception_text_is_withheld_and_ours_is_kept(captured) -> None:
    try:
        raise ValueError(f"The 'To' number {PHI_PHONE} is not a valid phone number")
    except ValueError:
        logging.getLogger("prm.test").exception("provider call failed")
    try:
        raise NotFound("Patient not found.")
    except NotFound:
        logging.getLogger("prm.test").exception("lookup failed")
    logged = captured.getvalue()
    assert PHI_PHONE not in logged
    assert "ValueError (message withheld" in logged
    assert "NotFound: Patient not found." in logged
    assert "test_phi_safe_logs.py" in logged  # the frames are kept for debugging


def test_chained_exceptions_keep_their_order_and_frames() -> None:
    try:
        try:
            raise KeyError(PHI_EMAIL)
        except KeyError as inner:
            raise LookupError(PHI_PHONE) from inner
    except LookupError as exc:
        rendered = format_exception_safely(type(exc), exc, exc.__traceback__)
    assert rendered.index("KeyError") < rendered.index("LookupError")
    assert PHI_EMAIL not in rendered and PHI_PHONE not in rendered


def test_json_lines_withhold_exception_text_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("prm.test.json")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"The 'To' number {PHI_PHONE} is not a valid phone number")
        except ValueError:
            logger.exception("provider call failed")
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "provider call failed" and entry["level"] == "ERROR"
    assert "ValueError (message withheld" in entry["exception"]
    assert "test_phi_safe_logs.py" in entry["exception"]  # the frames are kept for debugging
    assert PHI_PHONE not in line
