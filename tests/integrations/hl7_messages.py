"""HL7 v2 messages as an EHR sends them (ER7, segments separated by CR), built from small parts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

MRN_AUTHORITY = "GENHOSP"
HL7 = "/hl7/v2"


def control_id() -> str:
    """A fresh message control id."""
    return f"MSG{uuid.uuid4().hex[:16]}"


def msh(message_type: str, control: str) -> str:
    """The header of a message from General Hospital's EHR to the PRM."""
    return f"MSH|^~\\&|EPIC|GENHOSP|PRM|CLINIC|20261201120000||{message_type}|{control}|P|2.5.1"


def pid(
    mrn: str, family: str = "Doe", given: str = "John", birth: str = "19800101", phone: str = "5550199"
) -> str:
    """A PID naming the patient by their MRN at General Hospital."""
    return (
        f"PID|1||{mrn}^^^{MRN_AUTHORITY}^MR||{family}^{given}^Q||{birth}|M|||"
        f"1 Main St^^Springfield^IL^62701^US||^PRN^PH^^1^415^{phone}"
    )


def message(*segments: str) -> str:
    """Segments joined as ER7 wants."""
    return "\r".join(segments) + "\r"


def adt(trigger: str, mrn: str, *extra: str, control: str | None = None, **names: str) -> str:
    """An ADT message about the patient `mrn`."""
    return message(
        msh(f"ADT^{trigger}^ADT_A01", control or control_id()),
        f"EVN|{trigger}|20261201120000",
        pid(mrn, **names),
        *extra,
    )


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment from its non-empty fields, by position."""
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


def pv1(visit: str, *, admitted: str = "20261130080000", discharged: str = "") -> str:
    """An inpatient visit in orthopaedic surgery, Dr House attending."""
    return segment(
        "PV1",
        {
            1: "1",
            2: "I",
            3: "ORTHO^201^A",
            7: "1234^House^Gregory^^^^^^GENHOSP",
            10: "SUR",
            19: visit,
            44: admitted,
            45: discharged,
        },
    )


def discharge_after_knee_replacement(mrn: str, visit: str, control: str | None = None) -> str:
    """A03: discharged from orthopaedic surgery after a total knee replacement (CPT 27447)."""
    return adt(
        "A03",
        mrn,
        pv1(visit, discharged="20261201100000"),
        "PR1|1||27447^Total knee arthroplasty^CPT4|Total knee replacement|20261130090000",
        control=control,
    )


def siu(
    trigger: str,
    mrn: str,
    placer: str,
    start: datetime,
    minutes: int = 30,
    control: str | None = None,
    practitioner: str = "1234^House^Gregory^^^^^^GENHOSP",
    reason: str = "",
    location: str = "",
) -> str:
    """An SIU message about appointment `placer` of patient `mrn` at `start` (at AIL-3 `location`, if any)."""
    ts = start.strftime("%Y%m%d%H%M%S+0000")
    ail = [f"AIL|1||{location}|||{ts}|||{minutes}|MIN"] if location else []
    return message(
        msh(f"SIU^{trigger}^SIU_S12", control or control_id()),
        f"SCH|{placer}^GENHOSP||||||{reason}|FOLLOWUP^Follow-up visit|{minutes}|MIN|^^{minutes}^{ts}",
        pid(mrn),
        "RGS|1",
        f"AIS|1||FOLLOWUP^Follow-up visit|{ts}|||{minutes}|MIN",
        f"AIP|1||{practitioner}|||{ts}|||{minutes}|MIN",
        *ail,
    )


def segments(ack: str) -> dict[str, list[str]]:
    """The ACK's segments by id, each split into fields (index = HL7 position for non-MSH segments)."""
    return {line.split("|")[0]: line.split("|") for line in ack.split("\r") if line}


async def send(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: str | bytes,
    content_type: str = "application/hl7-v2",
) -> httpx.Response:
    """POST one message (text goes as UTF-8; bytes as they are)."""
    content = body.encode() if isinstance(body, str) else body
    return await client.post(HL7, content=content, headers={**auth, "Content-Type": content_type})


async def count(session_of: Callable[[], AsyncSession], model: type) -> int:
    """Rows of `model` in the tenant."""
    async with session_of() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
