"""The people and words of the demo clinic: all fictional, generated the same way on every machine.

Phone numbers are NANP 555-01xx numbers (reserved for fiction, yet valid to the phone validator) and email
addresses are on example.com (reserved for documentation: the email validator refuses example.test, a
special-use name). With no Twilio or SendGrid credentials nothing is sent anyway: the outbox records it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from domain.enums import Channel, Gender

DEMO_RANDOM_SEED = 20261201
PATIENT_COUNT = 100


@dataclass(frozen=True)
class DemoPractitioner:
    """One of the clinic's clinicians."""

    first_name: str
    last_name: str
    gender: Gender
    qualification: str
    speciality: str
    sub_speciality: str | None
    license_number: str
    phone: str
    email: str


@dataclass(frozen=True)
class DemoPatient:
    """One fictional patient, with the demo MRN it is registered under."""

    mrn: str
    first_name: str
    last_name: str
    date_of_birth: date
    gender: Gender
    phone: str
    email: str
    city: str
    state: str
    preferred_channel: Channel
    preferred_language: str


# fmt: off
PRACTITIONERS = [
    DemoPractitioner("Amelia", "Chen", Gender.FEMALE, "MD, FAAOS", "Orthopedic Surgery", "Sports Medicine",
                     "NY-MD-100231", "+1 415 555 0101", "amelia.chen@example.com"),
    DemoPractitioner("Rafael", "Ortiz", Gender.MALE, "MD", "Family Medicine", None,
                     "NY-MD-100874", "+1 415 555 0102", "rafael.ortiz@example.com"),
    DemoPractitioner("Priya", "Natarajan", Gender.FEMALE, "MD, FACC", "Cardiology", "Heart Failure",
                     "NY-MD-101552", "+1 415 555 0103", "priya.natarajan@example.com"),
    DemoPractitioner("Tomas", "Lindqvist", Gender.MALE, "DPT", "Physical Therapy", "Post-operative Rehab",
                     "NY-PT-200417", "+1 415 555 0104", "tomas.lindqvist@example.com"),
]
# fmt: on

_FIRST_NAMES = {
    Gender.FEMALE: [
        "Maria",
        "Emily",
        "Aisha",
        "Sofia",
        "Grace",
        "Hannah",
        "Leila",
        "Mei",
        "Olivia",
        "Priscilla",
        "Rosa",
        "Tamsin",
        "Una",
        "Valentina",
        "Wren",
        "Yasmin",
        "Zoe",
        "Ingrid",
        "Nadia",
        "Beatrix",
    ],
    Gender.MALE: [
        "James",
        "Daniel",
        "Omar",
        "Luca",
        "Mateo",
        "Noah",
        "Kwame",
        "Hiroshi",
        "Felix",
        "Arjun",
        "Bruno",
        "Caleb",
        "Dmitri",
        "Elias",
        "Gideon",
        "Ivan",
        "Jonah",
        "Kai",
        "Marcus",
        "Theo",
    ],
}
_LAST_NAMES = [
    "Garcia",
    "Okafor",
    "Novak",
    "Kim",
    "Rahman",
    "Alvarez",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Gallagher",
    "Haddad",
    "Ishikawa",
    "Jovanovic",
    "Kowalski",
    "Lindgren",
    "Moreau",
    "Nakamura",
    "O'Connell",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Takahashi",
    "Umarov",
    "Vasquez",
    "Whitfield",
    "Xu",
    "Yilmaz",
    "Zimmerman",
    "Abernathy",
    "Bishop",
    "Coleman",
    "Delacroix",
    "Ellison",
    "Fontaine",
    "Greaves",
]
_PLACES = [
    ("New York", "NY"),
    ("Brooklyn", "NY"),
    ("Queens", "NY"),
    ("Bronx", "NY"),
    ("Jersey City", "NJ"),
    ("Hoboken", "NJ"),
    ("Yonkers", "NY"),
    ("Staten Island", "NY"),
]
_AREA_CODES = ["212", "347", "646", "718", "917"]
_LANGUAGES = ["en"] * 8 + ["es", "ko"]
_CHANNELS = [Channel.SMS] * 5 + [Channel.WHATSAPP] * 3 + [Channel.EMAIL] * 2


def demo_patients() -> list[DemoPatient]:
    """The clinic's 100 patients, the same on every run (MRN-DEMO-0001 ... MRN-DEMO-0100)."""
    rng = random.Random(DEMO_RANDOM_SEED)  # noqa: S311 - fiction, not secrets
    patients = []
    for number in range(1, PATIENT_COUNT + 1):
        gender = Gender.FEMALE if number % 2 else Gender.MALE
        first = rng.choice(_FIRST_NAMES[gender])
        last = rng.choice(_LAST_NAMES)
        city, state = rng.choice(_PLACES)
        # 555-0100 ... 555-0199, one line per patient, spread over the city's area codes.
        phone = f"+1 {_AREA_CODES[number % len(_AREA_CODES)]} 555 {99 + number:04d}"
        handle = f"{first}.{last}".lower().replace("'", "")
        patients.append(
            DemoPatient(
                mrn=f"MRN-DEMO-{number:04d}",
                first_name=first,
                last_name=last,
                date_of_birth=date(rng.randint(1942, 2004), rng.randint(1, 12), rng.randint(1, 28)),
                gender=gender,
                phone=phone,
                email=f"{handle}.{number}@example.com",
                city=city,
                state=state,
                preferred_channel=rng.choice(_CHANNELS),
                preferred_language=rng.choice(_LANGUAGES),
            )
        )
    return patients


# What patients answer to a reminder or a follow-up: scored by VADER like any inbound message.
REMINDER_REPLIES = [
    "C",
    "Confirmed, thank you!",
    "Yes I'll be there, thanks for the reminder",
    "Great, see you then",
    "Can I come 15 minutes later? Traffic is terrible on Tuesdays",
    "I can't make it, I'm sick. Sorry",
    "Ok",
    "Thanks! Is parking still free on the first floor?",
]
FOLLOW_UP_REPLIES = [
    "Feeling much better, thank you so much!",
    "The pain is worse today and the swelling hasn't gone down. I'm worried",
    "All good, the new medication is working great",
    "Still a bit sore but improving every day",
    "Terrible night, could not sleep because of the pain",
    "Thank you Dr, the exercises really help",
    "Not sure the physio is helping, it hurts more after each session",
    "Happy with the visit, the staff were wonderful",
]

VISIT_TYPES = ["follow-up", "consultation", "new-patient", "post-op review", "annual check-up"]
BOOKING_CHANNELS = ["phone", "web", "whatsapp", "front-desk"]
CANCELLATION_REASONS = ["Patient asked to rebook", "Practitioner unavailable", "Patient is unwell"]
