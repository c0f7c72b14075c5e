"""HL7 v2 messages shaped as Epic and Cerner interfaces send them: times without an offset (the clinic's local
time), languages by name (`SPANISH`), placeholder phones (`000`), local codes, Z-segments, and MSH-3/MSH-4
naming the sending system. Built from small parts, like `hl7_messages`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from domain.fhir.identifiers import PATIENT_IDS
from domain.patients.models import Patient
from tests.integrations.hl7_messages import message, segment, segments

EPIC = ("EPIC", "NYCLINIC")
CERNER = ("CERNER", "NORTHSIDE")
MRN_AUTHORITY = "NYCLINIC"


def control_id() -> str:
    """A fresh control id, numeric as Epic's are."""
    return str(uuid.uuid4().int)[:12]


def msh(message_type: str, control: str, sender: tuple[str, str] = EPIC, sent: str = "20261201120000") -> str:
    """An MSH without a zone on MSH-7, as Epic's Bridges interfaces stamp it."""
    application, facility = sender
    return f"MSH|^~\\&|{application}|{facility}|PRM|PRM|{sent}||{message_type}|{control}|P|2.3"


def pid(
    mrn: str,
    *,
    family: str = "Garcia",
    given: str = "Maria",
    sex: str = "F",
    language: str = "SPANISH",
    phone: str = "000",
    authority: str = MRN_AUTHORITY,
) -> str:
    """A PID as Epic sends it: PID-15 the language's name, PID-13 a placeholder home phone."""
    return segment(
        "PID",
        {
            1: "1",
            3: f"{mrn}^^^{authority}^MR",
            5: f"{family}^{given}^^^^^L",
            7: "19750412",
            8: sex,
            11: "10 W 66th St^^New York^NY^10023^USA^H",
            13: f"{phone}^PRN^PH",
            15: language,
        },
    )


def zpd() -> str:
    """An Epic Z-segment (patient extension): ignored by the receiver."""
    return "ZPD|1|Y|N||MyChart^ACTIVE"


def adt(
    trigger: str,
    mrn: str,
    *extra: str,
    control: str | None = None,
    sender: tuple[str, str] = EPIC,
    **fields: str,
) -> str:
    """An ADT message (Epic's shape: EVN, PID, a Z-segment, then `extra`)."""
    return message(
        msh(f"ADT^{trigger}", control or control_id(), sender),
        f"EVN|{trigger}|20261201120000",
        pid(mrn, **fields),
        zpd(),
        *extra,
    )


def pv1(visit: str, *, admitted: str = "20261130080000", discharged: str = "") -> str:
    """An inpatient orthopaedic visit, times without an offset."""
    return segment(
        "PV1",
        {
            1: "1",
            2: "I",
            3: "ORTHO^201^A",
            7: "4321^Grey^Meredith^^^^^^NYCLINIC",
            10: "SUR",
            19: visit,
            44: admitted,
            45: discharged,
        },
    )


def siu(
    trigger: str,
    mrn: str,
    appointment: str,
    start: str,
    *,
    minutes: int = 30,
    kind: str = "FOLLOWUP^Follow-up visit",
    control: str | None = None,
    sender: tuple[str, str] = EPIC,
    **fields: str,
) -> str:
    """An SIU as Epic sends it: SCH-11 and AIS/AIP times in the clinic's local time, no offset."""
    return message(
        msh(f"SIU^{trigger}", control or control_id(), sender),
        f"SCH|{appointment}^EPIC|{appointment}^EPIC|||||ROUTINE|{kind}|{minutes}|MIN|^^{minutes}^{start}",
        pid(mrn, **fields),
        "PV1|1|O|||||4321^Grey^Meredith^^^^^^NYCLINIC",
        "RGS|1",
        f"AIS|1||{kind}|{start}|||{minutes}|MIN",
        f"AIP|1||4321^Grey^Meredith^^^^^^NYCLINIC|||{start}|||{minutes}|MIN",
        "ZSC|1|CONFIRMED",
    )


def ack_code(response: httpx.Response) -> str:
    """MSA-1 of the ACK."""
    assert response.status_code == 200, response.text
    return segments(response.text)["MSA"][1]


def errors(ack: str) -> list[tuple[str, str, str]]:
    """Each ERR of an ACK as (ERR-2 location, ERR-3 code, ERR-4 severity)."""
    found = []
    for line in ack.split("\r"):
        if line.startswith("ERR|"):
            fields = line.split("|")
            found.append((fields[2], fields[3].split("^")[0], fields[4]))
    return found


async def patient_by_mrn(
    session_of: Callable[[], AsyncSession], mrn: str, authority: str = MRN_AUTHORITY
) -> Patient | None:
    """The patient the clinic's MRN names."""
    async with session_of() as session:
        patient_id = await PATIENT_IDS.find(session, authority, mrn)
        return await session.get(Patient, patient_id) if patient_id else None
