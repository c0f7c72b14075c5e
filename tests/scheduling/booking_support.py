"""Helpers for the booking conversation tests: a practitioner with open slots to offer."""

from __future__ import annotations

from tests.scheduling.conftest import future


async def slots_for(make_practitioner, make_slot, count: int) -> tuple[dict, list[dict]]:
    practitioner = await make_practitioner(speciality="Dermatology")
    return practitioner, [
        await make_slot(practitioner["id"], future(days=2 + i, hour=9)) for i in range(count)
    ]
