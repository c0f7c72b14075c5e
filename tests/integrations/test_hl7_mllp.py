"""`prm hl7 mllp`: the MLLP listener forwards what an EHR sends over TCP to `POST /hl7/v2` and answers the
API's ACK in an MLLP block (a real socket, the real python-hl7 MLLP client, the app in-process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import hl7
import httpx
import pytest
from hl7.mllp import open_hl7_connection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cli.hl7_mllp import Hl7Forwarder, start_listener
from core.client_credentials import Scope
from domain.patients.models import Patient
from tests.integrations.conftest import ClientFactory
from tests.integrations.hl7_messages import adt, count


@pytest.fixture
async def listener_port(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, make_client: ClientFactory
) -> AsyncIterator[int]:
    """An MLLP listener on a free port, forwarding as an HL7 client of this test's tenant."""
    creds = await make_client(tenant_id, (Scope.HL7,))
    server = await start_listener(Hl7Forwarder(client, creds.client_id, creds.secret), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, *messages: str, encoding: str = "ascii") -> list[hl7.Message]:
    """Send each message over one MLLP connection (its text in `encoding`); the ACKs, in order."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding=encoding)
    try:
        acks = []
        for message in messages:
            writer.writemessage(hl7.parse(message))
            await writer.drain()
            acks.append(await reader.readmessage())
        return acks
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_message_sent_over_mllp_is_applied_once_and_acknowledged(
    listener_port: int, client: httpx.AsyncClient
) -> None:
    register = adt("A04", "MRN-MLLP-1", control="MLLP-0001")

    first, repeat = await exchange(listener_port, register, register)

    assert str(first.segment("MSA")(1)) == "AA"
    assert str(first.segment("MSA")(2)) == "MLLP-0001"
    assert str(repeat) == str(first)


async def test_a_latin_1_message_declared_in_msh_18_is_read_as_such_over_mllp(
    listener_port: int, session_of: Callable[[], AsyncSession]
) -> None:
    header, _, rest = adt("A04", "MRN-MLLP-2", family="Müller", control="MLLP-0002").partition("\r")
    register = f"{header}||||||8859/1\r{rest}"  # the listener runs with its default, UTF-8

    [ack] = await exchange(listener_port, register, encoding="iso-8859-1")

    assert str(ack.segment("MSA")(1)) == "AA"
    async with session_of() as session:
        assert (await session.scalars(select(Patient.last_name))).all() == ["Müller"]
    assert await count(session_of, Patient) == 1


async def test_a_malformed_message_over_mllp_gets_the_apis_refusal(listener_port: int) -> None:
    [ack] = await exchange(
        listener_port, "MSH|^~\\&|EPIC|GENHOSP|PRM|CLINIC|20261201120000||ORU^R01|C9|P|2.5.1\r"
    )

    assert str(ack.segment("MSA")(1)) == "AR"
    assert "ADT and SIU" in str(ack.segment("MSA")(3))


async def test_wrong_credentials_answer_an_ar_the_sender_may_retry(client: httpx.AsyncClient) -> None:
    server = await start_listener(Hl7Forwarder(client, "prm_client_nobody", "wrong"), "127.0.0.1", 0)
    try:
        [ack] = await exchange(server.sockets[0].getsockname()[1], adt("A04", "MRN-MLLP-2"))
    finally:
        server.close()
        await server.wait_closed()

    assert str(ack.segment("MSA")(1)) == "AR"
