"""The benchmarks' one seeder: a realistic clinic network, bulk-loaded with PostgreSQL COPY.

    .venv/bin/python -m bench.seed [--scale 0.01] [--only patients,messages] [--url URL | --keep]

At `--scale 1` (the default): 1,000,000 patients, 2,000,000 appointments, 5,000,000 messages, 100,000
journey instances (4 stages each) and 200,000 tickets over five tenants, one of them holding 80 % of
everything (800,000 patients). Every count scales with `--scale`. As a function:

    dataset = seed_dataset(url, scale=0.01)   # -> Dataset: the tenants (largest first), sample ids

The data:
- names drawn from real first- and last-name lists with a skewed (Zipf-like) choice, so "Smith" and
  "James" are common (about 1 % of the people and 7 % of the men; the census says 0.9 % and 3 %) and most
  surnames are rare: a long tail of generated surnames (70 % of the patients, tens of thousands of them),
  a few accented names (García, José, Müller); gender follows the first name; E.164 phone numbers, MRNs
  `MRN-000000001` (unique per tenant), e-mail addresses for 70 % of the patients;
- practitioners (one per 2,000 patients, at least 5) with 13 appointments a day each, 40 minutes apart
  from 08:00, from months back to a month ahead: never overlapping, as the exclusion constraint demands;
  past ones completed / no-show / cancelled, future ones booked / confirmed / cancelled;
- messages in time order over the last two years (the tenants' streams interleaved, as a real log
  grows), sentences built from word lists with a skewed choice of words, medication names (30 % of the
  messages), two-word phrases and rare code words (`ref xxxxx0`), 12 % inbound, the rest with their
  delivery timestamps; each message's patient drawn from its tenant;
- journeys (five per tenant), their instances with four stages each, and tickets, spread over a year.

Constraints, foreign keys and indexes hold for every row (the data is consistent by construction). Patients
are loaded with every trigger on. The other tables are loaded with `session_replication_role = replica`,
as the analytics benchmark does: that skips their per-row triggers (the `prm_metrics` NOTIFY, the analytics
rollup triggers, the patients' last visits) and the foreign-key checks; then `prm_last_visits_rebuild()`
sets the patients' last visits and `analytics_rebuild(tenant)` recomputes the rollups of each tenant, as
after any bulk load (`rollups=False` skips that for benchmarks that do not read them, and
leaves the rollups empty). The patients' and the messages' indexes that back no constraint are dropped
during the load and built again after it (one sorted build is much faster than maintaining trigram and
full-text GIN indexes row by row). Ends with VACUUM ANALYZE.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from bench.common import scratch_database
from core.embedded_db import to_libpq_url

FULL_SCALE = {
    "patients": 1_000_000,
    "appointments": 2_000_000,
    "messages": 5_000_000,
    "journey_instances": 100_000,
    "tickets": 200_000,
}
PARTS = ("patients", "appointments", "messages", "journeys", "tickets")
TENANT_SHARES = (0.80, 0.08, 0.05, 0.04, 0.03)  # the first tenant is the big one
TENANT_NAMES = (
    "Metro Health Network",
    "Harbor Family Clinic",
    "Lakeside Pediatrics",
    "Northside Dental",
    "Valley Physio",
)
PATIENTS_PER_PRACTITIONER = 2_000
APPOINTMENTS_PER_DAY = 13  # per practitioner, 40 minutes apart from 08:00
DAYS_AHEAD = 30
MESSAGE_DAYS = 730  # messages span the last two years

# Ranked roughly by frequency (US census order, plus a few accented ones); the choice is Zipf-like.
MALE_FIRST = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew "
    "Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy Ronald Jason Edward "
    "Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel "
    "Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary "
    "Douglas Peter Kyle Noah Ethan Jeremy Walter Christian Keith Roger Terry Austin Sean Gerald Carl "
    "Harold Dylan Arthur Lawrence Jordan Jesse Bryan Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie "
    "Elijah Wayne Randy Vincent Mason Roy Ralph Bobby Russell Bradley Philip Eugene Carlos Luis Miguel "
    "Jon Johnny Mohammed Ahmed Wei Hiroshi Raj Ivan Oscar José André François Jürgen Søren"
).split()
FEMALE_FIRST = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra "
    "Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Dorothy Rebecca "
    "Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole Samantha Katherine "
    "Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane Olivia Julie Joyce Victoria "
    "Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan Cheryl Jacqueline Martha "
    "Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances Jean Alice Judy Isabella Julia "
    "Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie Theresa Diana Brittany Doris Kayla "
    "Alexis Lori Marie Ana Sofia Fatima Mei Yuki Priya Olga Chloé Zoë Renée Inés María"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
    "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez "
    "Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole "
    "Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens "
    "Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker "
    "Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz "
    "Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
    "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley "
    "Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham "
    "Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman "
    "Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Okonkwo Kowalski "
    "Nakamura Singh Kumar Ivanova Rossi Dubois García Martínez Rodríguez Hernández López González Pérez "
    "Sánchez Núñez Muñoz Müller Schröder Ødegaard O'Brien O'Connor"
).split()
SYLLABLES = (
    "an ber car dal el fen gar hol in jor kel lan mar nor ol per quin ros sal tor ul van wel xan yor zel "
    "ash bro cha dre ev fos gri ham ing jen kov lin mon nes ost pat ric son tam vik"
).split()
# Calibrated on the US census shares: "Smith" about 0.9 % of the people, the 100th surname about 0.1 %,
# most people with a surname outside the top few hundred ("James", 3 % of the men there, is 7 % here).
TAIL_SURNAMES = 0.70  # share of patients with a rare (generated) surname
# The rare surnames: TAIL_SIZE distinct syllable-built names ranked after LAST_NAMES, the one at overall
# rank r drawn with weight 1/r (Zipf, s = 1). In the 2010 US census a surname of rank r holds a share of
# about 0.12/r of the people from rank 300 on; 0.12 x ln(92,000 / 270) is the 0.70 of TAIL_SURNAMES, so the
# tail ends at rank 92,000: 800,000 patients carry some 79,000 distinct surnames, about 20,000 of them once.
TAIL_SIZE = 91_730
SURNAME_SYLLABLES = SYLLABLES + "bel dor fa gu ha ke lo mi na pe ra sy te vo wa ya zu ro ki".split()
GENDER_CHOICES = ("male", "female", "other", "unknown")

OPENERS = (
    "Hi|Hello|Dear|Good morning|Good afternoon|Reminder:|Update:|Quick note:|Thank you|Important:"
).split("|")
# Ordered from most to least frequent: a word's chance falls off steeply with its position.
WORDS = (
    "your the appointment please to a is for and with on at you we clinic visit today tomorrow call "
    "reply confirm doctor results care team next week time check pharmacy prescription ready pickup "
    "follow up how feeling pain recovery questions portal bring insurance card arrive minutes early "
    "blood pressure test lab fasting hours before procedure surgery dressing wound stitches "
    "medication dose refill morning evening daily twice side effects nausea dizziness fever "
    "temperature swelling rest water diet exercise walk sleep review report scan x-ray mri ultrasound "
    "vaccine booster flu covid allergy rash cough headache balance payment invoice billing due "
    "reschedule cancel waitlist slot available opening confirmed cancelled feedback survey rating "
    "physiotherapy cardiology dermatology pediatrics orthopedics ophthalmology dental hygiene cleaning "
    "cholesterol glucose thyroid vitamin iron biopsy referral specialist consent form signature"
).split()
PHRASES = (
    "blood pressure|follow up|side effects|lab results|fasting hours|physical therapy|"
    "pain level|next appointment|insurance card|wound care"
).split("|")
MEDICATIONS = (
    "metformin lisinopril atorvastatin amlodipine omeprazole levothyroxine simvastatin losartan "
    "albuterol gabapentin hydrochlorothiazide sertraline furosemide pantoprazole prednisone tramadol "
    "amoxicillin azithromycin ciprofloxacin doxycycline ibuprofen acetaminophen naproxen insulin "
    "warfarin apixaban clopidogrel montelukast fluticasone escitalopram bupropion trazodone citalopram "
    "meloxicam carvedilol metoprolol rosuvastatin tamsulosin finasteride allopurinol"
).split()
MESSAGE_CHANNELS = ("whatsapp", "sms", "email")
OUTBOUND_STATUSES = ("delivered", "delivered", "read", "read", "sent", "failed", "queued")
SOURCE_CHANNELS = ("phone", "web", "whatsapp", "walk_in", "sms", "referral")
JOURNEY_NAMES = (
    "Post-op recovery",
    "New patient onboarding",
    "Chronic care",
    "Pre-surgery",
    "Maternity follow-up",
)
COPY_BATCH = 20_000  # rows per write to the COPY stream


@dataclass(frozen=True)
class SeededTenant:
    """One tenant of the data set and how much of it it holds."""

    id: uuid.UUID
    name: str
    patients: int
    appointments: int
    messages: int


@dataclass
class Dataset:
    """What `seed_dataset` loaded: the tenants (largest first), a few sample ids, row counts, seconds."""

    url: str
    scale: float
    tenants: list[SeededTenant]
    sample_patient_ids: list[uuid.UUID] = field(default_factory=list)  # of the largest tenant
    sample_practitioner_ids: list[uuid.UUID] = field(default_factory=list)  # of the largest tenant
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def main(self) -> SeededTenant:
        """The largest tenant (80 % of the data), the one benchmarks search in."""
        return self.tenants[0]

    @property
    def total_seconds(self) -> float:
        """Seconds the whole load took."""
        return sum(self.seconds.values())


def _zipf_cum_weights(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1 / (rank + 1) ** s for rank in range(n)))


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace("'", "")


def _ts(at: datetime) -> str:
    return at.isoformat()


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _tail_surnames() -> list[str]:
    """TAIL_SIZE distinct syllable-built surnames (2 to 4 syllables), most frequent first; always the same."""
    rng = random.Random(1790)  # the first census
    taken = {name.lower() for name in LAST_NAMES}
    names: list[str] = []
    while len(names) < TAIL_SIZE:
        name = "".join(rng.choice(SURNAME_SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        if name not in taken:
            taken.add(name)
            names.append(name.capitalize())
    return names


class _Names:
    """A skewed draw of (first name, last name, gender)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.male_w = _zipf_cum_weights(len(MALE_FIRST), 0.6)
        self.female_w = _zipf_cum_weights(len(FEMALE_FIRST), 0.6)
        self.last_w = _zipf_cum_weights(len(LAST_NAMES), 0.5)
        self.tail = _tail_surnames()
        first_rank = len(LAST_NAMES) + 1
        self.tail_w = list(itertools.accumulate(1 / r for r in range(first_rank, first_rank + TAIL_SIZE)))

    def draw(self) -> tuple[str, str, str]:
        rng = self.rng
        r = rng.random()
        if r < 0.49:
            first, gender = rng.choices(MALE_FIRST, cum_weights=self.male_w)[0], "male"
        elif r < 0.98:
            first, gender = rng.choices(FEMALE_FIRST, cum_weights=self.female_w)[0], "female"
        else:
            pool = rng.choice((MALE_FIRST, FEMALE_FIRST))
            first, gender = rng.choice(pool), rng.choice(("other", "unknown"))
        if rng.random() < TAIL_SURNAMES:
            last = rng.choices(self.tail, cum_weights=self.tail_w)[0]
        else:
            last = rng.choices(LAST_NAMES, cum_weights=self.last_w)[0]
        return first, last, gender


class _Messages:
    """Message texts: a skewed choice of words, medications, phrases and rare code words."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.word_w = _zipf_cum_weights(len(WORDS), 1.1)
        self.med_w = _zipf_cum_weights(len(MEDICATIONS), 0.7)

    def text(self, i: int) -> str:
        rng = self.rng
        words = rng.choices(WORDS, cum_weights=self.word_w, k=5 + (i * 7919) % 12)
        parts = [rng.choice(OPENERS), *words]
        if rng.random() < 0.30:
            dose = 5 * rng.randint(1, 40)
            parts += ["take", rng.choices(MEDICATIONS, cum_weights=self.med_w)[0], str(dose), "mg daily"]
        if rng.random() < 0.08:
            parts.append(rng.choice(PHRASES))
        if rng.random() < 0.05:
            code = "".join(rng.choice(SYLLABLES) for _ in range(3)) + str(rng.randrange(10))
            parts += ["ref", code]
        return " ".join(parts) + "."


@contextmanager
def _secondary_indexes_dropped(conn: psycopg.Connection, table: str) -> Iterator[None]:
    """Drop `table`'s indexes that back no constraint, and build them again afterwards: one sorted build is
    much faster than maintaining a GIN index row by row during a bulk load."""
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        (table, table),
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        for _, definition in indexes:
            conn.execute(definition)


def _copy(conn: psycopg.Connection, table: str, columns: Iterable[str], rows: Iterator[str]) -> int:
    """Stream tab-separated `rows` (one line each, already escaped) into `table` with COPY; rows written."""
    count = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        batch: list[str] = []
        for line in rows:
            batch.append(line)
            if len(batch) >= COPY_BATCH:
                copy.write("".join(batch))
                count += len(batch)
                batch = []
        if batch:
            copy.write("".join(batch))
            count += len(batch)
    return count


def _plan(tenants: list[SeededTenant], total: int) -> list[tuple[uuid.UUID, int, int]]:
    """(tenant, its patients, its share of `total`) for each tenant."""
    return [(t.id, t.patients, n) for t, n in zip(tenants, _split(total), strict=True)]


def _split(total: int) -> list[int]:
    """`total` split over the tenants by TENANT_SHARES (the first takes the rounding)."""
    parts = [int(total * share) for share in TENANT_SHARES]
    parts[0] += total - sum(parts)
    return parts


def seed_dataset(
    url: str,
    scale: float = 1.0,
    *,
    parts: Iterable[str] = PARTS,
    rollups: bool = True,
    seed: int = 42,
    log: Callable[[str], None] = print,
) -> Dataset:
    """Load the data set into the (migrated, empty) database at `url`; see the module docstring."""
    wanted = set(parts)
    unknown = wanted - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts: {sorted(unknown)}")
    rng = random.Random(seed)
    counts = {name: max(0, round(n * scale)) for name, n in FULL_SCALE.items()}
    if "patients" not in wanted:
        counts["patients"] = max(len(TENANT_SHARES) * 20, round(counts["patients"] / 250))
    patients, appointments = _split(counts["patients"]), _split(counts["appointments"])
    messages = _split(counts["messages"])
    tenants = [
        SeededTenant(
            _uuid(rng),
            TENANT_NAMES[n],
            patients[n],
            appointments[n] * ("appointments" in wanted),
            messages[n] * ("messages" in wanted),
        )
        for n in range(len(TENANT_SHARES))
    ]
    dataset = Dataset(url=url, scale=scale, tenants=tenants)
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        for t in tenants:
            conn.execute(
                "INSERT INTO tenants (id, name, timezone, settings, is_active) "
                "VALUES (%s, %s, 'UTC', '{}', true)",
                (t.id, t.name),
            )
        with _secondary_indexes_dropped(conn, "patients"):
            patient_ids = _seed_patients(conn, tenants, rng)
        dataset.rows["patients"] = sum(len(ids) for ids in patient_ids.values())
        dataset.seconds["patients"] = time.perf_counter() - started
        log(f"  {dataset.rows['patients']:,} patients in {dataset.seconds['patients']:.0f} s")
        dataset.sample_patient_ids = rng.sample(patient_ids[tenants[0].id], min(100, tenants[0].patients))

        # The rest skips per-row triggers and foreign-key checks (consistent by construction); see above.
        conn.execute("SET session_replication_role = replica")
        started = time.perf_counter()
        practitioners = _seed_practitioners(conn, tenants, rng)
        dataset.sample_practitioner_ids = practitioners[tenants[0].id][:10]
        if "appointments" in wanted:
            dataset.rows["appointments"] = _seed_appointments(conn, tenants, patient_ids, practitioners, rng)
            dataset.seconds["appointments"] = time.perf_counter() - started
            log(f"  {dataset.rows['appointments']:,} appointments in {dataset.seconds['appointments']:.0f} s")
            conn.execute("SELECT prm_last_visits_rebuild()")  # the skipped triggers keep it (migration 0032)
        if "messages" in wanted:
            started = time.perf_counter()
            with _secondary_indexes_dropped(conn, "communications"):
                dataset.rows["messages"] = _seed_messages(conn, tenants, patient_ids, rng, log)
            dataset.seconds["messages"] = time.perf_counter() - started
            log(
                f"  {dataset.rows['messages']:,} messages (indexes rebuilt) "
                f"in {dataset.seconds['messages']:.0f} s"
            )
        if wanted & {"journeys", "tickets"}:
            number_patients(conn)
        if "journeys" in wanted:
            started = time.perf_counter()
            dataset.rows["journey_instances"] = seed_journeys(
                conn, _plan(tenants, counts["journey_instances"])
            )
            dataset.seconds["journeys"] = time.perf_counter() - started
            log(
                f"  {dataset.rows['journey_instances']:,} journey instances "
                f"in {dataset.seconds['journeys']:.0f} s"
            )
        if "tickets" in wanted:
            started = time.perf_counter()
            dataset.rows["tickets"] = seed_tickets(conn, _plan(tenants, counts["tickets"]))
            dataset.seconds["tickets"] = time.perf_counter() - started
            log(f"  {dataset.rows['tickets']:,} tickets in {dataset.seconds['tickets']:.0f} s")
        conn.execute("SET session_replication_role = origin")
        if rollups and wanted & {"appointments", "messages", "journeys"}:
            started = time.perf_counter()
            for t in tenants:
                conn.execute("SELECT analytics_rebuild(%s)", (t.id,))
            dataset.seconds["rollups"] = time.perf_counter() - started
            log(f"  analytics rollups rebuilt in {dataset.seconds['rollups']:.0f} s")
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        dataset.seconds["vacuum"] = time.perf_counter() - started
    return dataset


def _seed_patients(
    conn: psycopg.Connection, tenants: list[SeededTenant], rng: random.Random
) -> dict[uuid.UUID, list[uuid.UUID]]:
    names = _Names(rng)
    areas = ("212", "305", "312", "415", "512", "617", "646", "702", "718", "808")
    channels = ("whatsapp", "sms", "email")
    ids: dict[uuid.UUID, list[uuid.UUID]] = {}
    today = datetime.now(UTC).date()

    def rows() -> Iterator[str]:
        for t in tenants:
            own = ids.setdefault(t.id, [])
            for n in range(1, t.patients + 1):
                pid = _uuid(rng)
                own.append(pid)
                first, last, gender = names.draw()
                born = today - timedelta(days=rng.randrange(365, 95 * 365))
                phone = f"+1{rng.choice(areas)}{rng.randrange(2_000_000, 10_000_000):07d}"
                email = (
                    f"{_ascii(first).lower()}.{_ascii(last).lower()}{n}@example.com"
                    if rng.random() < 0.7
                    else "\\N"
                )
                status = "active" if rng.random() < 0.97 else rng.choice(("inactive", "deceased"))
                yield (
                    f"{pid}\t{t.id}\tMRN-{n:09d}\t{first}\t{last}\t{born}\t{gender}\t{phone}\t{email}\t"
                    f"{status}\t{{}}\t{rng.choice(channels)}\n"
                )

    _copy(
        conn,
        "patients",
        (
            "id",
            "tenant_id",
            "mrn",
            "first_name",
            "last_name",
            "date_of_birth",
            "gender",
            "phone_primary",
            "email_primary",
            "status",
            "meta_data",
            "preferred_channel",
        ),
        rows(),
    )
    return ids


def _seed_practitioners(
    conn: psycopg.Connection, tenants: list[SeededTenant], rng: random.Random
) -> dict[uuid.UUID, list[uuid.UUID]]:
    names = _Names(rng)
    specialities = ("general", "cardiology", "dermatology", "pediatrics", "orthopedics", "physiotherapy")
    ids: dict[uuid.UUID, list[uuid.UUID]] = {}

    def rows() -> Iterator[str]:
        for t in tenants:
            own = ids.setdefault(t.id, [])
            for _ in range(max(5, t.patients // PATIENTS_PER_PRACTITIONER)):
                pid = _uuid(rng)
                own.append(pid)
                first, last, _gender = names.draw()
                yield f"{pid}\t{t.id}\t{first}\t{last}\t{rng.choice(specialities)}\tt\t{{}}\n"

    _copy(
        conn,
        "practitioners",
        ("id", "tenant_id", "first_name", "last_name", "speciality", "is_active", "meta_data"),
        rows(),
    )
    return ids


def _seed_appointments(
    conn: psycopg.Connection,
    tenants: list[SeededTenant],
    patient_ids: dict[uuid.UUID, list[uuid.UUID]],
    practitioners: dict[uuid.UUID, list[uuid.UUID]],
    rng: random.Random,
) -> int:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    past = ("completed",) * 6 + ("no_show", "cancelled")
    future = ("booked", "confirmed", "confirmed", "cancelled")

    def rows() -> Iterator[str]:
        for t in tenants:
            docs, people = practitioners[t.id], patient_ids[t.id]
            per_doc = -(-t.appointments // len(docs))
            first_day = today - timedelta(days=-(-per_doc // APPOINTMENTS_PER_DAY) - DAYS_AHEAD)
            slots: dict[int, tuple[str, str, str, bool]] = {}
            for k in range(t.appointments):
                j = k // len(docs)  # the doctor's j-th appointment: a day and a slot of that day
                if j not in slots:
                    start = first_day + timedelta(
                        days=j // APPOINTMENTS_PER_DAY, hours=8, minutes=40 * (j % APPOINTMENTS_PER_DAY)
                    )
                    slots[j] = (
                        _ts(start),
                        _ts(start + timedelta(minutes=30)),
                        _ts(start - timedelta(days=10)),
                        start < now,
                    )
                start_s, end_s, booked_s, is_past = slots[j]
                status = rng.choice(past if is_past else future)
                yield (
                    f"{_uuid(rng)}\t{t.id}\t{rng.choice(people)}\t{docs[k % len(docs)]}\tf\t"
                    f"{start_s}\t{end_s}\t"
                    f"{status}\tconsultation\t{rng.choice(SOURCE_CHANNELS)}\t{{}}\t{booked_s}\t{booked_s}\n"
                )

    return _copy(
        conn,
        "appointments",
        (
            "id",
            "tenant_id",
            "patient_id",
            "practitioner_id",
            "shared_slot",
            "start_time",
            "end_time",
            "status",
            "appointment_type",
            "source_channel",
            "meta_data",
            "created_at",
            "updated_at",
        ),
        rows(),
    )


def _seed_messages(
    conn: psycopg.Connection,
    tenants: list[SeededTenant],
    patient_ids: dict[uuid.UUID, list[uuid.UUID]],
    rng: random.Random,
    log: Callable[[str], None],
) -> int:
    total = sum(t.messages for t in tenants)
    if not total:
        return 0
    texts = _Messages(rng)
    cum = list(itertools.accumulate(t.messages for t in tenants))
    start = datetime.now(UTC) - timedelta(days=MESSAGE_DAYS)
    step = timedelta(days=MESSAGE_DAYS) / total

    def rows() -> Iterator[str]:
        for i in range(total):
            t = tenants[bisect.bisect_right(cum, rng.randrange(total))]
            at = start + step * i
            created = _ts(at)
            channel = rng.choice(MESSAGE_CHANNELS)
            body = texts.text(i)
            subject = " ".join(body.split()[1:3]).capitalize() if channel == "email" else "\\N"
            if rng.random() < 0.12:
                direction, status, recipient = "inbound", "received", "\\N"
                sent = delivered = read = failed = "\\N"
            else:
                direction, status, recipient = "outbound", rng.choice(OUTBOUND_STATUSES), "+14155550100"
                sent = _ts(at + timedelta(seconds=2)) if status != "queued" else "\\N"
                delivered = _ts(at + timedelta(seconds=5)) if status in ("delivered", "read") else "\\N"
                read = _ts(at + timedelta(minutes=20)) if status == "read" else "\\N"
                failed = _ts(at + timedelta(seconds=3)) if status == "failed" else "\\N"
            yield (
                f"{_uuid(rng)}\t{t.id}\t{rng.choice(patient_ids[t.id])}\t{direction}\t{channel}\t{recipient}\t"
                f"{subject}\t{body}\t{{}}\t{status}\tf\t{sent}\t{delivered}\t{read}\t{failed}\t{{}}\t"
                f"{created}\t{created}\n"
            )
            if (i + 1) % 1_000_000 == 0:
                log(f"    {i + 1:,} messages")

    return _copy(
        conn,
        "communications",
        (
            "id",
            "tenant_id",
            "patient_id",
            "direction",
            "channel",
            "recipient",
            "subject",
            "message",
            "template_vars",
            "status",
            "is_urgent",
            "sent_at",
            "delivered_at",
            "read_at",
            "failed_at",
            "meta_data",
            "created_at",
            "updated_at",
        ),
        rows(),
    )


def number_patients(conn: psycopg.Connection) -> None:
    """A temporary table `seed_patients (tenant_id, n, id)` numbering each tenant's patients from 0, which
    the SQL-generated journeys and tickets draw their patients from."""
    conn.execute(
        "CREATE TEMP TABLE seed_patients AS SELECT tenant_id, "
        "(row_number() OVER (PARTITION BY tenant_id ORDER BY id) - 1)::int AS n, id FROM patients"
    )
    conn.execute("ALTER TABLE seed_patients ADD PRIMARY KEY (tenant_id, n)")


def seed_journeys(conn: psycopg.Connection, plan: list[tuple[uuid.UUID, int, int]]) -> int:
    """For each (tenant, its patients, instances): five journeys, and the instances (four stages each) over
    the last year, as in a live system: recent ones mostly active, older ones ended. Needs
    `number_patients`."""
    done = 0
    for tenant_id, patients, count in plan:
        conn.execute(
            "INSERT INTO journeys (id, tenant_id, name, journey_type, is_default, is_active, "
            "trigger_conditions) "
            "SELECT gen_random_uuid(), %(t)s, name, 'care', false, true, '{}'::jsonb "
            "FROM unnest(%(names)s::text[]) AS name",
            {"t": tenant_id, "names": list(JOURNEY_NAMES)},
        )
        conn.execute(
            "CREATE TEMP TABLE seed_journeys AS "
            "SELECT row_number() OVER (ORDER BY id) AS n, id FROM journeys WHERE tenant_id = %s",
            (tenant_id,),
        )
        conn.execute(
            """
            CREATE TEMP TABLE seed_instances AS
            SELECT gen_random_uuid() AS id, i, started, duration, 1 + (hashint4(i) & 3) AS current,
                   CASE WHEN started > now() - interval '30 days'
                        THEN (array['active','active','active','active','active','active','active','active',
                                    'completed','cancelled'])[1 + floor(random() * 10)::int]
                        ELSE (array['completed','completed','completed','completed','completed','completed',
                                    'completed','completed','cancelled',
                                    'failed'])[1 + floor(random() * 10)::int]
                   END AS status
            FROM (SELECT i, now() - random() * interval '365 days' AS started,
                         (1 + random() * 20) * interval '1 day' AS duration
                  FROM generate_series(1, %(n)s::int) AS i) AS g
            """,
            {"n": count},
        )
        conn.execute(
            """
            INSERT INTO journey_instances (id, tenant_id, journey_id, patient_id, status, context,
                                           definition_snapshot, started_at, completed_at, cancelled_at,
                                           created_at, updated_at)
            SELECT s.id, %(t)s, j.id, pa.id, s.status, '{}'::jsonb, '{}'::jsonb, s.started,
                   CASE WHEN s.status = 'completed' THEN least(s.started + s.duration, now()) END,
                   CASE WHEN s.status = 'cancelled' THEN least(s.started + s.duration / 2, now()) END,
                   s.started, least(s.started + s.duration, now())
            FROM seed_instances s
            JOIN seed_journeys j ON j.n = 1 + s.i %% 5
            JOIN seed_patients pa ON pa.tenant_id = %(t)s
                 AND pa.n = (hashint4(s.i + 7) & 2147483647) %% %(npat)s::int
            """,
            {"t": tenant_id, "npat": patients},
        )
        conn.execute(
            """
            INSERT INTO journey_instance_stages (id, tenant_id, instance_id, order_index, name, status,
                                                 started_at, completed_at)
            SELECT gen_random_uuid(), %(t)s, s.id, k, 'Stage ' || k, st.status,
                   CASE WHEN st.status <> 'pending' THEN s.started + (k - 1) * s.duration / 4 END,
                   CASE WHEN st.status = 'completed' THEN s.started + k * s.duration / 4 END
            FROM seed_instances s CROSS JOIN generate_series(1, 4) AS k
            CROSS JOIN LATERAL (SELECT CASE
                WHEN s.status = 'completed' OR k < s.current THEN 'completed'
                WHEN k > s.current THEN 'pending'
                WHEN s.status = 'active' THEN 'active'
                WHEN s.status = 'failed' THEN 'failed'
                ELSE 'skipped' END AS status) AS st
            """,
            {"t": tenant_id},
        )
        conn.execute("DROP TABLE seed_journeys, seed_instances")
        done += count
    return done


def seed_tickets(conn: psycopg.Connection, plan: list[tuple[uuid.UUID, int, int]]) -> int:
    """For each (tenant, its patients, tickets): tickets over the last year, 5 % still open, the rest resolved
    or closed. Needs `number_patients`."""
    for tenant_id, patients, count in plan:
        conn.execute(
            """
            INSERT INTO tickets (id, tenant_id, patient_id, title, priority, status, first_response_at,
                                 resolved_at, closed_at, response_breached, resolution_breached,
                                 created_at, updated_at)
            SELECT gen_random_uuid(), %(t)s, pa.id, 'Callback request', g.priority, g.status,
                   CASE WHEN g.responded THEN g.created + random() * interval '8 hours' END,
                   CASE WHEN g.status IN ('resolved', 'closed')
                        THEN g.created + random() * interval '5 days' END,
                   CASE WHEN g.status = 'closed' THEN g.created + interval '6 days' END,
                   random() < 0.1, random() < 0.05, g.created, g.created
            FROM (
                SELECT i, now() - random() * interval '365 days' AS created, random() < 0.9 AS responded,
                       (array['low','medium','medium','high',
                              'urgent'])[1 + floor(random() * 5)::int] AS priority,
                       CASE WHEN random() < 0.05
                            THEN (array['open','in_progress',
                                        'waiting_on_patient'])[1 + floor(random() * 3)::int]
                            ELSE (array['resolved','resolved','closed'])[1 + floor(random() * 3)::int]
                       END AS status
                FROM generate_series(1, %(n)s::int) AS i
            ) AS g
            JOIN seed_patients pa ON pa.tenant_id = %(t)s
                 AND pa.n = (hashint4(g.i + 13) & 2147483647) %% %(npat)s::int
            """,
            {"t": tenant_id, "n": count, "npat": patients},
        )
    return sum(count for *_, count in plan)


def describe(dataset: Dataset) -> str:
    """One line: what was loaded and how long it took."""
    rows = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in dataset.rows.items())
    return (
        f"{rows} over {len(dataset.tenants)} tenants (the largest holds {dataset.main.patients:,} patients), "
        f"loaded in {dataset.total_seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    """Seed a scratch database (or `--url`) and print what was loaded."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set (default 1)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}"
    )
    parser.add_argument("--no-rollups", action="store_true", help="skip analytics_rebuild after the load")
    parser.add_argument("--url", help="an existing, migrated, empty database (otherwise a scratch one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]

    def run(url: str) -> None:
        dataset = seed_dataset(url, args.scale, parts=parts, rollups=not args.no_rollups)
        print(describe(dataset))
        print(f"tenants: {', '.join(f'{t.name}={t.id}' for t in dataset.tenants)}")
        print(f"database: {url}")

    if args.url:
        run(args.url)
    else:
        with scratch_database(keep=args.keep) as url:
            run(url)


if __name__ == "__main__":
    main()
