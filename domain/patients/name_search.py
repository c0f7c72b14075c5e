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

Each statement is built once per shape (tier, number of readings or words) with bound parameters and
reused: building a union of ORM selects anew costs more than running it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
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
from sqlalchemy.sql.elements import BindParameter

from domain.patients.models import Patient, patient_name_terms

TERM_CANDIDATES = 10  # vocabulary terms a word expands to in the fuzzy tier
MIN_TYPO_WORD = 3  # letters: shorter words are only looked for inside names, never as typos
SIMILAR_WORD = 6  # letters: a word this long with no name one edit away is matched by trigram similarity
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_WORDS = 5  # words of a query that count (a name is rarely longer; each adds readings to try)
PREFIX_END = "\U0010ffff"  # the largest code point: key >= p AND key < p || PREFIX_END is "starts with p"

# (tier, condition, first sort key, second sort key) of one indexed branch.
Branch = tuple[int, ColumnElement[bool], Any, Any]
Params = dict[str, Any]


def _p(name: str, **options: Any) -> BindParameter[Any]:
    """A named bound parameter (typed for mypy)."""
    return bindparam(name, **options)


FIRST, LAST = Patient.first_name_key, Patient.last_name_key
TENANT = _p("tenant")
LIMIT = _p("limit")
EXCLUDE = _p("exclude", expanding=True)


@dataclass(frozen=True)
class Term:
    """A vocabulary term close to a word of the query: its edit distance and trigram similarity."""

    term: str
    distance: int
    similarity: float


async def search_names(session: AsyncSession, tenant_id: uuid.UUID, query: str, limit: int) -> list[Patient]:
    """Up to `limit` of the tenant's patients matching `query` by name, best first (see the module doc)."""
    words = (await _key(session, query)).split()[:MAX_WORDS]
    if not words:
        return []
    found: dict[uuid.UUID, Patient] = {}
    for tier in (_exact_or_prefix, _fuzzy):
        planned = await tier(session, tenant_id, tuple(words))
        if planned is not None:
            stmt, params = planned
            params |= {"tenant": tenant_id, "limit": limit - len(found), "exclude": list(found)}
            for patient in (await session.scalars(stmt, params)).all():
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


def _starts_with(column: Any, name: str) -> ColumnElement[bool]:
    """`column` starts with the parameter `name` (a range its btree reads in order)."""
    return and_(column >= _p(name), column < _p(f"{name}_end"))


def _prefix_params(name: str, value: str) -> Params:
    return {name: value, f"{name}_end": value + PREFIX_END}


async def _key(session: AsyncSession, query: str) -> str:
    """The query as names are keyed (`prm_name_key`): computed here for plain ASCII (lower-cased, nothing to
    unaccent), by PostgreSQL's unaccent rules otherwise (one round trip)."""
    if query.isascii():
        return query.lower()
    return await session.scalar(select(func.prm_name_key(query))) or ""


async def _exact_or_prefix(
    _session: AsyncSession, _tenant_id: uuid.UUID, words: tuple[str, ...]
) -> tuple[Select[Any], Params]:
    if len(words) == 1:
        return _exact_or_prefix_statement(0), _prefix_params("w", words[0])
    readings = _splits(words)
    params: Params = {}
    for i, (f, la) in enumerate(readings):
        params |= _prefix_params(f"f{i}", f) | _prefix_params(f"l{i}", la)
    return _exact_or_prefix_statement(len(readings)), params


@cache
def _exact_or_prefix_statement(readings: int) -> Select[Any]:
    """Exact names (tier 0), then names starting with the word(s) (tier 1, exact ones excluded): one word as
    the first or the last name (`readings` 0), or each (first, last) reading of several words. One
    statement: each branch reads at most a page in its index order, so running all of them costs less
    than a second round trip."""
    if not readings:
        w = _p("w")
        return _page(
            [
                (0, FIRST == w, FIRST, LAST),
                (0, LAST == w, LAST, FIRST),
                # `> w`, not `>= w AND <> w`: the range then starts after every exact match instead of
                # reading past them (27,000 "mary" for "mary").
                (1, and_(FIRST > w, FIRST < _p("w_end")), FIRST, LAST),
                (1, and_(LAST > w, LAST < _p("w_end")), LAST, FIRST),
            ]
        )
    exact, prefix = [], []
    for i in range(readings):
        same = and_(FIRST == _p(f"f{i}"), LAST == _p(f"l{i}"))
        exact.append((0, same, LAST, FIRST))
        prefix.append(
            (1, and_(_starts_with(FIRST, f"f{i}"), _starts_with(LAST, f"l{i}"), ~same), LAST, FIRST)
        )
    return _page(exact + prefix)


def _page(branches: list[Branch]) -> Select[Any]:
    """The first `limit` patients of the branches together: each branch reads at most `limit` rows in its
    index order, the union is sorted by (tier, first key, second key, id)."""
    parts = [
        select(Patient, literal(tier).label("tier"), key1.label("k1"), key2.label("k2"))
        .where(Patient.tenant_id == TENANT, Patient.id.not_in(EXCLUDE), condition)
        .order_by(key1, key2, Patient.id)
        .limit(LIMIT)
        for tier, condition, key1, key2 in branches
    ]
    union = union_all(*parts).subquery()
    found = aliased(Patient, union)
    return select(found).order_by(union.c.tier, union.c.k1, union.c.k2, union.c.id).limit(LIMIT)


async def _fuzzy(
    session: AsyncSession, tenant_id: uuid.UUID, words: tuple[str, ...]
) -> tuple[Select[Any], Params] | None:
    if len(words) == 1:
        close = (await _close_terms(session, tenant_id, list(words)))[words[0]]
        return (_by_term_statement(), {"terms": [t.term for t in close]}) if close else None
    splits = _splits(words)
    terms = await _close_terms(session, tenant_id, list(dict.fromkeys(p for s in splits for p in s)))
    pairs = sorted(
        (f.distance + la.distance, -(f.similarity + la.similarity), f.term, la.term)
        for first, last in splits
        for f in terms[first]
        for la in terms[last]
    )
    if not pairs:
        return None
    return _by_pair_statement(), {"firsts": [p[2] for p in pairs], "lasts": [p[3] for p in pairs]}


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
    params: Params = {"tenant": tenant_id}
    for n, part in enumerate(parts):
        escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params |= {
            f"part{n}": part,
            f"inside{n}": f"%{escaped}%",
            # "ol" is someone typing, not a typo of "al": no variants for words that short
            f"variants{n}": _one_edit_away(part) if len(part) >= MIN_TYPO_WORD else [],
        }
    found: dict[str, list[Term]] = {part: [] for part in parts}
    for n, value, distance, similarity in await session.execute(
        _terms_statement(len(parts), similar), params
    ):
        found[parts[n]].append(Term(value, distance, similarity))
    return found


@cache
def _terms_statement(parts: int, similar: bool) -> Any:
    """The closest terms of each of `parts` words: one edit away or containing it (or, `similar`, close
    by trigrams), ranked by edit distance, then similarity."""
    term = patient_name_terms.c.term
    selects = []
    for n in range(parts):
        part = _p(f"part{n}")
        distance = func.levenshtein_less_equal(term, part, 3)
        similarity = func.similarity(term, part)
        close: ColumnElement[bool]
        if similar:
            close = term.bool_op("%")(part)
        else:
            variants = _p(f"variants{n}", type_=ARRAY(Text))
            close = or_(term == any_(variants), term.like(_p(f"inside{n}"), escape="\\"))
        selects.append(
            select(literal(n).label("part"), term, distance.label("distance"), similarity.label("similarity"))
            .where(patient_name_terms.c.tenant_id == TENANT, close)
            .order_by(distance, similarity.desc(), term)
            .limit(TERM_CANDIDATES)
        )
    return union_all(*selects)


def _ranked(**columns: Any) -> Any:
    """`unnest(...) WITH ORDINALITY` over parallel array parameters, sorted by the ordinality (`rank`): the
    outer side of a nested loop that the planner knows to be in rank order, so it stops once the page is
    full (an incremental sort on the rank)."""
    arrays = [_p(name, type_=ARRAY(sql_type)) for name, sql_type in columns.items()]
    table = func.unnest(*arrays).table_valued(*columns, with_ordinality="rank").render_derived()
    return select(table).order_by(table.c.rank).subquery("ranked")


@cache
def _by_term_statement() -> Select[Any]:
    """Patients whose first or last name is one of `terms`, the closest term first, then by the other name."""
    ranked = _ranked(terms=Text)
    branches = [
        select(Patient, other.label("k2"))
        .where(Patient.tenant_id == TENANT, Patient.id.not_in(EXCLUDE), column == ranked.c.terms)
        .order_by(other, Patient.id)
        .limit(LIMIT)
        for column, other in ((FIRST, LAST), (LAST, FIRST))
    ]
    matches = union_all(*branches).lateral("matches")
    patient = aliased(Patient, matches)
    return (
        select(patient)
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.k2, matches.c.id)
        .limit(LIMIT)
    )


@cache
def _by_pair_statement() -> Select[Any]:
    """Patients whose (first, last) name is one of the (`firsts`, `lasts`) pairs, the closest pair first."""
    ranked = _ranked(firsts=Text, lasts=Text)
    matches = (
        select(Patient)
        .where(
            Patient.tenant_id == TENANT,
            Patient.id.not_in(EXCLUDE),
            FIRST == ranked.c.firsts,
            LAST == ranked.c.lasts,
        )
        .order_by(Patient.id)
        .limit(LIMIT)
        .lateral("matches")
    )
    patient = aliased(Patient, matches)
    return (
        select(patient)
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.id)
        .limit(LIMIT)
    )
