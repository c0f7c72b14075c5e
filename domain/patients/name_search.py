"""Patient name search in tiers, the way a coordinator expects the results: exact names first, then names
that start with what was typed, then names with a typo or containing it.

Each tier reads only what it returns, through the indexes of migration 0012, and the next tier runs only
when the page is not full yet:

1. exact: a word equal to the first or the last name ("smith"); two or more words equal to the first and
   the last name, in either order ("john smith", "smith john", "maria garcia lopez");
2. prefix: the same, each word a prefix ("jo", "jo smi"), exact matches excluded;
3. fuzzy: each word looked up in the tenant's name vocabulary (`patient_name_terms`: trigram similarity,
   a small edit distance, or the word inside a name, "konk" in "Okonkwo"); the closest terms then select
   the patients. A single word ranks by how close its term is, several words by the trigram similarity of
   the whole name.

Names and the query are compared as keys (`prm_name_key`: unaccented, lower-cased), so "jose garcia"
finds "José García". Within a tier, patients are ordered by the matched name, then the other, then id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.patients.models import Patient, patient_name_terms

TERM_CANDIDATES = 10  # vocabulary terms a word expands to in the fuzzy tier
TERM_SIMILARITY = (
    0.2  # the vocabulary's trigram threshold: short names share few trigrams ("jon"/"john" 0.29)
)
CLOSE_SIMILARITY = 0.3  # pg_trgm's default: a term at least this similar is a match at any edit distance
MAX_WORDS = 5  # words of a query that count (a name is rarely longer; each adds readings to try)
PREFIX_END = "\U0010ffff"  # the largest code point: key >= p AND key < p || PREFIX_END is "starts with p"

# (condition, first sort key, second sort key) of one indexed branch of a tier.
Branch = tuple[ColumnElement[bool], Any, Any]


async def search_names(session: AsyncSession, tenant_id: uuid.UUID, query: str, limit: int) -> list[Patient]:
    """Up to `limit` of the tenant's patients matching `query` by name, best first (see the module doc)."""
    key = await session.scalar(select(func.prm_name_key(query)))
    words = tuple((key or "").split())[:MAX_WORDS]
    if not words:
        return []
    found: dict[uuid.UUID, Patient] = {}
    for tier in (_exact, _prefix, _fuzzy):
        branches = await tier(session, tenant_id, words)
        if branches:
            stmt = _page(tenant_id, branches, limit - len(found), exclude=list(found))
            for patient in (await session.scalars(stmt)).all():
                found.setdefault(patient.id, patient)
        if len(found) >= limit:
            break
    return list(found.values())


def _splits(words: Sequence[str]) -> list[tuple[str, str]]:
    """(first name, last name) readings of several words, at each gap, in both orders: "mary ann smith" is
    ("mary", "ann smith"), ("ann smith", "mary"), ("mary ann", "smith") and ("smith", "mary ann")."""
    readings = []
    for gap in range(1, len(words)):
        head, tail = " ".join(words[:gap]), " ".join(words[gap:])
        readings += [(head, tail), (tail, head)]
    return list(dict.fromkeys(readings))


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    return and_(column >= prefix, column < prefix + PREFIX_END)


async def _exact(_session: AsyncSession, _tenant_id: uuid.UUID, words: tuple[str, ...]) -> list[Branch]:
    first, last = Patient.first_name_key, Patient.last_name_key
    if len(words) == 1:
        return [(first == words[0], first, last), (last == words[0], last, first)]
    return [(and_(first == f, last == la), last, first) for f, la in _splits(words)]


async def _prefix(_session: AsyncSession, _tenant_id: uuid.UUID, words: tuple[str, ...]) -> list[Branch]:
    first, last = Patient.first_name_key, Patient.last_name_key
    if len(words) == 1:
        w = words[0]
        return [
            (and_(_starts_with(first, w), first != w), first, last),
            (and_(_starts_with(last, w), last != w), last, first),
        ]
    return [
        (and_(_starts_with(first, f), _starts_with(last, la), ~and_(first == f, last == la)), last, first)
        for f, la in _splits(words)
    ]


async def _fuzzy(session: AsyncSession, tenant_id: uuid.UUID, words: tuple[str, ...]) -> list[Branch]:
    first, last = Patient.first_name_key, Patient.last_name_key
    parts = list(words) if len(words) == 1 else list(dict.fromkeys(p for s in _splits(words) for p in s))
    terms = await _similar_terms(session, tenant_id, parts)
    if len(words) == 1:
        # One branch per term and name, ranked by the term's closeness: each an index range read in order.
        branches: list[Branch] = []
        for rank, term in enumerate(terms[words[0]]):
            branches.append((first == term, literal(rank), last))
            branches.append((last == term, literal(rank), first))
        return branches
    key = func.concat_ws(" ", first, last)
    whole = " ".join(words)
    return [
        (and_(first.in_(terms[f]), last.in_(terms[la])), -func.similarity(key, whole), last)
        for f, la in _splits(words)
        if terms[f] and terms[la]
    ]


async def _similar_terms(
    session: AsyncSession, tenant_id: uuid.UUID, parts: list[str]
) -> dict[str, list[str]]:
    """The tenant's name terms close to each part (best first): similar by trigrams, a small edit distance
    away, or containing the part."""
    # The GIN index finds the candidates at this threshold (transaction-local); the filter below keeps
    # only the close ones.
    await session.execute(text(f"SET LOCAL pg_trgm.similarity_threshold = {TERM_SIMILARITY}"))
    term = patient_name_terms.c.term
    selects = []
    for n, part in enumerate(parts):
        distance = func.levenshtein_less_equal(term, part, 3)
        similarity = func.similarity(term, part)
        contains = term.contains(part, autoescape=True)
        selects.append(
            select(literal(n).label("part"), term)
            .where(
                patient_name_terms.c.tenant_id == tenant_id,
                or_(term.bool_op("%")(part), contains),
                or_(distance <= (1 if len(part) <= 4 else 2), similarity >= CLOSE_SIMILARITY, contains),
            )
            .order_by(distance, similarity.desc(), term)
            .limit(TERM_CANDIDATES)
        )
    rows = (await session.execute(union_all(*selects))).all()
    found: dict[str, list[str]] = {part: [] for part in parts}
    for n, value in rows:
        found[parts[n]].append(value)
    return found


def _page(tenant_id: uuid.UUID, branches: list[Branch], limit: int, exclude: list[uuid.UUID]) -> Select[Any]:
    """The first `limit` patients of the branches together: each branch reads at most `limit` rows in its
    index order, the union is sorted by (first key, second key, id)."""
    parts = []
    for condition, key1, key2 in branches:
        stmt = select(Patient, key1.label("k1"), key2.label("k2")).where(
            Patient.tenant_id == tenant_id, condition
        )
        if exclude:
            stmt = stmt.where(Patient.id.not_in(exclude))
        parts.append(stmt.order_by(key1, key2, Patient.id).limit(limit))
    union = union_all(*parts).subquery()
    found = aliased(Patient, union)
    return select(found).order_by(union.c.k1, union.c.k2, union.c.id).limit(limit)
