"""The region national phone numbers are read in is the process's setting, given to the app it builds
(not read from the environment behind its back)."""

from __future__ import annotations

from api.app import create_app
from core.phones import set_default_region
from domain.patients.schemas import PatientCreate


def test_the_apps_settings_decide_how_national_numbers_are_read(settings, database_url) -> None:
    try:
        create_app(settings.model_copy(update={"default_phone_region": "GB"}), database_url=database_url)
        london = PatientCreate(first_name="Ada", last_name="Byron", phone_primary="020 7946 0958")
        assert london.phone_primary == "+442079460958"
        create_app(settings, database_url=database_url)
        boston = PatientCreate(first_name="Ada", last_name="Byron", phone_primary="(617) 555-0100")
        assert boston.phone_primary == "+16175550100"
    finally:
        set_default_region(settings.default_phone_region)
