"""Hostile HL7 intake is answered with an ACK and stores nothing: repetitions, segments and delimiters are
bounded before python-hl7 builds anything (it reads the header line at most: no object, and no lock, per
repetition), and escapes that decode to control characters are refused with a reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import hl7
import httpx
import pytest

from core.settings import Settings
from domain.hl7.feed import Limits
from domain.hl7.messages import MAX_DELIMITERS, MAX_REPETITIONS, MAX_SEGMENTS, Hl7Error, parse
from domain.hl7.models import Hl7Message
from domain.patients.models import Patient
from tests.integrations.ehr_messages import ack_code, errors, msh
from tests.integrations.hl7_messages import count, message, send

HEADER = msh("ADT^A04", "H-1")
# A legal message at the edge of the budgets is parsed in full: a fraction of a second on a quiet machine,
# and bounded, whatever the load (the CI machine's two cores are shared). What matters is seconds, not the
# minutes an unbounded message took. Hostile ones are refused before python-hl7 parses their body (below),
# which the tests show by what it was given, not by a clock.
LEGAL_PARSE_SECONDS = 3.0


@pytest.fixture
def parsed_by_hl7(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text python-hl7 is asked to parse during the test (the library itself does the parsing)."""
    texts: list[str] = []
    original = hl7.parse

    def recording(text: str, *args: Any, **kwargs: Any) -> Any:
        texts.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(hl7, "parse", recording)
    return texts


async def test_a_pid3_with_20000_repetitions_is_an_ae_before_its_body_is_parsed(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any, parsed_by_hl7: list[str]
) -> None:
    identifiers = "~".join(f"MRN{i}^^^NYCLINIC^MR" for i in range(20_000))
    body = message(HEADER, f"PID|1||{identifiers}||Doe^John||19800101|M")

    response = await send(client, hl7_auth, body)

    assert parsed_by_hl7 == [HEADER]  # the header alone, for the ACK; never the 20,000 repetitions
    assert ack_code(response) == "AE"
    assert errors(response.text) == [("PID^1^3", "102", "E")]
    assert f"more than {MAX_REPETITIONS}" in response.text
    assert await count(session_of, Patient) == 0
    assert await count(session_of, Hl7Message) == 1  # the refusal, so that a resend gets the same ACK


@pytest.mark.parametrize(
    "body",
    [
        message(HEADER, "PID|1||X^^^H^MR||" + "^" * 900_000),  # a million components
        message(HEADER, "PID" + "|" * 900_000),  # a million fields
        message(HEADER, *["ZZZ|1"] * (MAX_SEGMENTS + 1)),
        message(HEADER, "PID|1||X^^^H^MR||Doe^" + "\\X41\\" * 150_000),  # escapes by the hundred thousand
        message("MSH" + "|" * 900_000),  # a header of a million fields
    ],
    ids=["components", "fields", "segments", "escapes", "header"],
)
async def test_a_message_past_the_limits_is_an_ar_before_its_body_is_parsed(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any, parsed_by_hl7: list[str], body: str
) -> None:
    response = await send(client, hl7_auth, body)

    assert all(text == HEADER for text in parsed_by_hl7)  # at most the header, never the oversized part
    assert ack_code(response) == "AR"
    assert errors(response.text)[0][0] == "MSH"
    assert await count(session_of, Patient) == 0


@pytest.mark.parametrize("escape", ["\\X00\\", "\\X01\\", "\\X1B\\", "\\X7F\\"])
async def test_an_escape_that_decodes_to_a_control_character_is_refused_naming_the_field(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: Any, escape: str
) -> None:
    body = message(HEADER, f"PID|1||E9001^^^NYCLINIC^MR||Do{escape}e^John||19800101|M")

    response = await send(client, hl7_auth, body)

    assert ack_code(response) == "AE"
    assert errors(response.text)[0][:2] == ("PID^1^5", "102")
    assert "character" in response.text
    assert await count(session_of, Patient) == 0


def test_the_delimiter_budget_fits_a_large_real_admission_and_parses_it_quickly() -> None:
    observations = [f"OBX|{i}|ST|8302-2^Body height^LN||{170 + i % 9}|cm|||||F" for i in range(300)]
    body = message(HEADER, "EVN|A04|20261201120000", "PID|1||E1^^^NYCLINIC^MR||Doe^John", *observations)
    assert sum(body.count(c) for c in "|^~&") < MAX_DELIMITERS

    started = time.monotonic()
    parsed = parse(body)

    assert time.monotonic() - started < LEGAL_PARSE_SECONDS
    assert len(parsed.segments("OBX")) == 300


def test_a_message_just_under_the_budget_is_parsed_in_seconds_not_minutes() -> None:
    body = message(HEADER, "PID|1||E1^^^NYCLINIC^MR||Doe^John||" + "^" * (MAX_DELIMITERS - 100))

    started = time.monotonic()
    parse(body)

    assert time.monotonic() - started < LEGAL_PARSE_SECONDS
    with pytest.raises(Hl7Error):
        parse(body.replace("Doe^John", "Doe^John" + "^" * 200))


@pytest.fixture
def hl7_settings(app: Any) -> Iterator[Callable[..., None]]:
    """Run the app under test with other HL7 limits (PRM_HL7_MAX_*) until the test ends."""
    settings = app.state.settings

    def use(**limits: int) -> None:
        app.state.settings = Settings.model_validate({**settings.model_dump(), **limits})

    yield use
    app.state.settings = settings


async def test_the_limits_are_the_deployments_settings(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], hl7_settings: Callable[..., None]
) -> None:
    hl7_settings(hl7_max_segments=10, hl7_max_repetitions=3)
    eleven = message(HEADER, "PID|1||X^^^H^MR||Doe^John", *["ZZZ|1"] * 9)
    repeated = message(msh("ADT^A04", "H-2"), "PID|1||A^^^H^MR~B^^^H^MR~C^^^H^MR~D^^^H^MR||Doe^John")

    assert ack_code(too_many := await send(client, hl7_auth, eleven)) == "AR"
    assert "more than 10 segments" in too_many.text
    assert ack_code(too_long := await send(client, hl7_auth, repeated)) == "AE"
    assert "PID-3 repeats more than 3 times" in too_long.text


async def test_a_message_past_the_byte_limit_is_an_ar(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], hl7_settings: Callable[..., None]
) -> None:
    hl7_settings(hl7_max_message_bytes=2048)

    response = await send(client, hl7_auth, message(HEADER, "PID|1||X^^^H^MR||Doe^" + "J" * 3000))

    assert ack_code(response) == "AR"
    assert "larger than 2048 bytes" in response.text


def test_the_default_limits_are_the_settings_defaults() -> None:
    assert Limits.from_settings(Settings(env="test")) == Limits()
