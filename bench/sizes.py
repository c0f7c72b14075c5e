"""How the search data grows: table and index sizes measured on seeded databases, and the `scale` section of
BENCHMARKS.md (how cost grows from 1M to 10M patients and to 100M messages, and what runs where).

    .venv/bin/python -m bench.sizes --patients URL --messages URL

URL: databases loaded by `bench.patient_search --keep` and `bench.communications_search --keep` (or
`bench.seed --keep`). Sizes are PostgreSQL's (`pg_relation_size`) right after the load and VACUUM ANALYZE.
"""

from __future__ import annotations

import argparse

import psycopg

from bench.common import write_section
from core.embedded_db import to_libpq_url

TABLES = {"patients": "patients", "messages": "communications"}
INDEXES = {
    "patients": (
        "ix_patients_tenant_first_key",
        "ix_patients_tenant_last_key",
        "ix_patients_full_name_trgm",
        "pk_patient_name_terms",
        "ix_patient_name_terms_trgm",
    ),
    "messages": ("ix_communications_search", "ix_communications_tenant_created"),
}


SECTION = """\
## Scale on paper

`python -m bench.sizes` on the databases of the two search benchmarks above (`bench.seed`, five tenants):

| data | rows | heap | all indexes | the search's indexes |
| --- | --- | --- | --- | --- |
| patients | {p_rows} | {p_heap} | {p_indexes} | {name_indexes} |
| messages | {m_rows} | {m_heap} | {m_indexes} | GIN {gin}; newest first, covering {tenant_time} |

**1M to 10M patients.** Every name search tier is an index range read bounded by the page (20 rows): the
btrees of the name keys grow tenfold (about {key_10x} each) but gain at most one level, so exact and prefix
searches cost the same. A typo costs primary-key probes of the word's variants (about 50 per letter) in the
name vocabulary, whatever its size; the vocabulary grows far slower than the patients ({terms} distinct
names at {p_rows} patients, most of them rare surnames), and only the "containing the word" lookup reads
its trigram index. No plan changes and no partitioning are needed: every index leads with the tenant, so a
tenant's searches do not slow down because other tenants grow, and the working set of name search (the two
key btrees and the vocabulary, about {working_set_10x} at 10M) stays in memory. What grows linearly is what
counts all matches: the list's `?search=` (a substring of name, e-mail, phone or MRN, with an exact `total`)
and `POST /patients/search`; at 10M a common surname's substring count reads about 100,000 rows. Those need
an estimated or capped total before then (not done here).

**5M to 100M messages.** The heap grows to about {m_heap_20x} and the indexes to about {m_indexes_20x} (half
of them the newest-first index that carries `search_vector`, which trades size for index-only reads). A
search for common words reads the newest messages first and stops after the first page's worth of matches,
so its cost depends on the word's share, not on the volume. The GIN index's cost for a word is the length
of its posting list, over every tenant and every year: twenty times longer at 100M, which is what makes
medium-rare words and phrases slower as the table grows (a rare word stays cheap). The lever is range
partitioning of `communications` by month of `created_at`: each month gets its own small GIN and btrees, a
newest-first search visits the newest partitions first (ordered append) and stops once the page is full,
VACUUM and index builds work month by month, and retention drops old months instead of deleting rows. It
needs `created_at` in the primary key and the unique keys (the idempotency key and the provider's message
id would then be unique per month, so their writers check older months), and the foreign key from
`message_sentiments` reworked. Worth doing before ~50M messages; not needed at 5M. Patients, appointments
and tickets do not need it at these sizes.

**When one machine is outgrown.** The API is stateless: several replicas behind a load balancer, each with
a small pool, and PgBouncer (transaction pooling) between them and PostgreSQL so connections stay bounded.
Workers scale out the same way: every replica polls the same Temporal task queues, and every activity is
idempotent under retry, so adding replicas is safe. Temporal runs as its own cluster (frontend, history,
matching and worker services) on its own database: PostgreSQL carries thousands of workflow starts a
minute; Cassandra when the history shards must spread over many nodes; Elasticsearch (or SQL advanced
visibility) for workflow search. PostgreSQL: the primary takes every write (the analytics rollups are kept
by triggers in the writing transaction); streaming read replicas serve the analytics dashboard, exports and
reports (a few seconds behind is acceptable there), while searches that must see a write just made stay on
the primary. Redis (rate limits) is one small shared instance.
"""


def measure(url: str, table: str, indexes: tuple[str, ...]) -> dict[str, int]:
    """Rows, heap bytes and index bytes of `table`, and the bytes of each named index."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT count(*), pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass) FROM " + table,  # noqa: S608
            (table, table),
        ).fetchone()
        assert row is not None
        sizes = {"rows": int(row[0]), "heap": int(row[1]), "indexes": int(row[2])}
        for name in indexes:
            found = conn.execute("SELECT pg_relation_size(to_regclass(%s))", (name,)).fetchone()
            sizes[name] = int(found[0] or 0) if found else 0
        if table == "patients":
            terms = conn.execute("SELECT count(*) FROM patient_name_terms").fetchone()
            sizes["terms"] = int(terms[0]) if terms else 0
    return sizes


def mb(n: int) -> str:
    """Bytes as MB."""
    return f"{n / 1_048_576:,.0f} MB"


def section(patients: dict[str, int], messages: dict[str, int]) -> str:
    """The BENCHMARKS.md section."""
    p, m = patients, messages
    keys = p["ix_patients_tenant_first_key"] + p["ix_patients_tenant_last_key"]
    vocabulary = p["pk_patient_name_terms"] + p["ix_patient_name_terms_trgm"]
    return SECTION.format(
        p_rows=f"{p['rows']:,}",
        p_heap=mb(p["heap"]),
        p_indexes=mb(p["indexes"]),
        name_indexes=f"name keys {mb(p['ix_patients_tenant_first_key'])} + "
        f"{mb(p['ix_patients_tenant_last_key'])}; vocabulary {p['terms']:,} terms, {mb(vocabulary)}",
        terms=f"{p['terms']:,}",
        vocabulary=mb(vocabulary),
        key_10x=mb(10 * p["ix_patients_tenant_first_key"]),
        working_set_10x=mb(10 * keys + 3 * vocabulary),
        m_rows=f"{m['rows']:,}",
        m_heap=mb(m["heap"]),
        m_indexes=mb(m["indexes"]),
        gin=mb(m["ix_communications_search"]),
        tenant_time=mb(m["ix_communications_tenant_created"]),
        m_heap_20x=mb(20 * m["heap"]),
        m_indexes_20x=mb(20 * m["indexes"]),
    )


def main() -> None:
    """Measure and write the section."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", required=True, metavar="URL", help="a database with the patients")
    parser.add_argument("--messages", required=True, metavar="URL", help="a database with the messages")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    body = section(
        measure(args.patients, TABLES["patients"], INDEXES["patients"]),
        measure(args.messages, TABLES["messages"], INDEXES["messages"]),
    )
    if args.no_write:
        print(body)
        return
    write_section("scale", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
