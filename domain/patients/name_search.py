"""Patient name search in tiers, the way a coordinator expects the results: exact names first, then names
that start with what was typed, then names with a typo or containing it.

Each tier reads only what it returns, through the indexes of migration 0012, and the next tier runs only
when the page is not full yet:

1. exact: a word equal to the first or the last name ("smith"); two or more words equal to the first and
   the last name, in either order ("john smith", "smith john", "maria garcia lopez");
2. prefix: the same, each word a prefix ("jo", "jo smi"), exact matches excluded;
3. fuzzy: each word looked up in the tenant's name vocabulary (`patient_name_terms`, tens of thousands of
   distinct names rather than a million rows): names one edit away from it (a letter changed, missing,
   added, or two swapped: "smyth", "jonh", "lovelase"), found by primary-key lookups of every such variant
   of the word, and names containing it ("konk" in "Okonkwo", through the trigram GIN index); a word of 6
   letters or more that finds neither is then matched by trigram similarity ("zabrisky" for "Zabriskie").
   Words of fewer than 3 letters are only looked for inside names. The closest terms (by edit distance,
   then trigram similarity) then select the patients, closest first: a nested loop over the ranked terms
   (or pairs of terms, for several words) with an index range read each, stopped once the page is full.

Names and the query are compared as keys (`prm_name_key`: unaccented, lower-cased), so "jose garcia"
finds "José García". Within a tier, patients are ordered by the matched name, then the other, then id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.patients.models import Patient, patient_name_terms

TERM_CANDIDATES = 10  # vocabulary terms a word expands to in the fuzzy tier
MIN_TYPO_WORD = 3  # letters: shorter words are only looked for inside names, never as typos
SIMILAR_WORD = 6  # letters: a word this long with no name one edit away is matched by trigram similarity
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_WORDS = 5  # words of a query that count (a name is rarely longer; each adds readings to try)
PREFIX_END = "\U0010ffff"  # the largest code point: key >= p AND key < p || PREFIX_END is "starts with p"

# (condition, first sort key, second sort key) of one indexed branch of a tier.
Branch = tuple[ColumnElement[bool], Any, Any]


@dataclass(frozen=True)
class Term:
    """A vocabulary term close to a word of the query: its edit distance and trigram similarity."""

    term: str
    distance: int
    similarity: float


async def search_names(session: AsyncSession, tenant_id: uuid.UUID, query: str, limit: int) -> list[Patient]:
    """Up to `limit` of the tenant's patients matching `query` by name, best first (see the module doc)."""
    key = await session.scalar(select(func.prm_name_key(query)))
    words = tuple((key or "").split())[:MAX_WORDS]
    if not words:
        return []
    found: dict[uuid.UUID, Patient] = {}
    for tier in (_exact, _prefix, _fuzzy):
        stmt = await tier(session, tenant_id, words, limit - len(found), list(found))
        if stmt is not None:
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


def _one_edit_away(word: str) -> list[str]:
    """Every string one deletion, transposition, substitution or insertion away from `word`."""
    letters = set(LETTERS) | set(word)
    cuts = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    variants = {a + b[1:] for a, b in cuts if b}
    variants |= {a + b[1] + b[0] + b[2:] for a, b in cuts if len(b) > 1}
    variants |= {a + c + b[1:] for a, b in cuts if b for c in letters}
    variants |= {a + c + b for a, b in cuts for c in letters}
    variants.discard(word)
    return sorted(variants)


async def _exact(
    _session: AsyncSession, tenant_id: uuid.UUID, words: tuple[str, ...], limit: int, exclude: list[uuid.UUID]
) -> Select[Any]:
    first, last = Patient.first_name_key, Patient.last_name_key
    if len(words) == 1:
        branches = [(first == words[0], first, last), (last == words[0], last, first)]
    else:
        branches = [(and_(first == f, last == la), last, first) for f, la in _splits(words)]
    return _page(tenant_id, branches, limit, exclude)


async def _prefix(
    _session: AsyncSession, tenant_id: uuid.UUID, words: tuple[str, ...], limit: int, exclude: list[uuid.UUID]
) -> Select[Any]:
    first, last = Patient.first_name_key, Patient.last_name_key
    if len(words) == 1:
        w = words[0]
        branches = [
            (and_(_starts_with(first, w), first != w), first, last),
            (and_(_starts_with(last, w), last != w), last, first),
        ]
    else:
        branches = [
            (and_(_starts_with(first, f), _starts_with(last, la), ~and_(first == f, last == la)), last, first)
            for f, la in _splits(words)
        ]
    return _page(tenant_id, branches, limit, exclude)


async def _fuzzy(
    session: AsyncSession, tenant_id: uuid.UUID, words: tuple[str, ...], limit: int, exclude: list[uuid.UUID]
) -> Select[Any] | None:
    if len(words) == 1:
        close = (await _close_terms(session, tenant_id, list(words)))[words[0]]
        return _by_term(tenant_id, [t.term for t in close], limit, exclude) if close else None
    splits = _splits(words)
    terms = await _close_terms(session, tenant_id, list(dict.fromkeys(p for s in splits for p in s)))
    pairs = sorted(
        (
            (f.distance + la.distance, -(f.similarity + la.similarity), f.term, la.term)
            for first, last in splits
            for f in terms[first]
            for la in terms[last]
        ),
    )
    return _by_pair(tenant_id, [(f, la) for *_, f, la in pairs], limit, exclude) if pairs else None


async def _close_terms(
    session: AsyncSession, tenant_id: uuid.UUID, parts: list[str]
) -> dict[str, list[Term]]:
    """The tenant's name terms close to each part, closest first (at most TERM_CANDIDATES each): one edit
    away (primary-key lookups of every variant) or containing the part (the trigram GIN index). A longer
    part that finds none is then matched by trigram similarity (pg_trgm's `%`, threshold 0.3: two typos
    in a long name), which lets the GIN index return many more candidates, hence only then."""
    found = await _terms(session, tenant_id, parts, similar=False)
    unmatched = [part for part in parts if not found[part] and len(part) >= SIMILAR_WORD]
    if unmatched:
        found.update(await _terms(session, tenant_id, unmatched, similar=True))
    return found


async def _terms(
    session: AsyncSession, tenant_id: uuid.UUID, parts: list[str], *, similar: bool
) -> dict[str, list[Term]]:
    term = patient_name_terms.c.term
    selects = []
    for n, part in enumerate(parts):
        distance = func.levenshtein_less_equal(term, part, 3)
        similarity = func.similarity(term, part)
        close = term.contains(part, autoescape=True)
        if similar:
            close = term.bool_op("%")(part)
        elif len(part) >= MIN_TYPO_WORD:  # "ol" is someone typing, not a typo of "al"
            close = or_(term == any_(bindparam(None, _one_edit_away(part), type_=ARRAY(Text))), close)
        selects.append(
            select(literal(n).label("part"), term, distance.label("distance"), similarity.label("similarity"))
            .where(patient_name_terms.c.tenant_id == tenant_id, close)
            .order_by(distance, similarity.desc(), term)
            .limit(TERM_CANDIDATES)
        )
    found: dict[str, list[Term]] = {part: [] for part in parts}
    for n, value, distance_, similarity_ in (await session.execute(union_all(*selects))).all():
        found[parts[n]].append(Term(value, distance_, similarity_))
    return found


def _ranked(columns: dict[str, tuple[list[Any], Any]]) -> Any:
    """`unnest(...) WITH ORDINALITY` over parallel lists, sorted by the ordinality (`rank`): the outer side
    of a nested loop that the planner knows to be in rank order, so it can stop once the page is full."""
    names = list(columns)
    arrays = [bindparam(None, values, type_=ARRAY(sql_type)) for values, sql_type in columns.values()]
    table = func.unnest(*arrays).table_valued(*names, with_ordinality="rank").render_derived()
    return select(table).order_by(table.c.rank).subquery("ranked")


def _by_term(tenant_id: uuid.UUID, terms: list[str], limit: int, exclude: list[uuid.UUID]) -> Select[Any]:
    """Patients whose first or last name is one of `terms`, the closest term first, then by the other name."""
    ranked = _ranked({"term": (terms, Text)})
    first, last = Patient.first_name_key, Patient.last_name_key
    branches = []
    for column, other in ((first, last), (last, first)):
        stmt = select(Patient, other.label("k2")).where(
            Patient.tenant_id == tenant_id, column == ranked.c.term
        )
        if exclude:
            stmt = stmt.where(Patient.id.not_in(exclude))
        branches.append(stmt.order_by(other, Patient.id).limit(limit))
    matches = union_all(*branches).lateral("matches")
    patient = aliased(Patient, matches)
    return (
        select(patient)
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.k2, matches.c.id)
        .limit(limit)
    )


def _by_pair(
    tenant_id: uuid.UUID, pairs: list[tuple[str, str]], limit: int, exclude: list[uuid.UUID]
) -> Select[Any]:
    """Patients whose (first, last) name is one of `pairs`, the closest pair first."""
    ranked = _ranked({"first": ([f for f, _ in pairs], Text), "last": ([la for _, la in pairs], Text)})
    stmt = select(Patient).where(
        Patient.tenant_id == tenant_id,
        Patient.first_name_key == ranked.c.first,
        Patient.last_name_key == ranked.c.last,
    )
    if exclude:
        stmt = stmt.where(Patient.id.not_in(exclude))
    matches = stmt.order_by(Patient.id).limit(limit).lateral("matches")
    patient = aliased(Patient, matches)
    return (
        select(patient)
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.id)
        .limit(limit)
    )


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
