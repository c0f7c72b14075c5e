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

Tiers 1 and 2 are one statement, tier 3 another: the vocabulary lookup is a CTE of the statement that
reads the patients, so a search costs at most two round trips (three for a query with letters beyond
ASCII, whose key PostgreSQL computes first).

Names and the query are compared as keys (`prm_name_key`: unaccented, lower-cased), so "jose garcia"
finds "José García". Within a tier, patients are ordered by the matched name, then the other, then id.

Each statement is a `core.reads.TenantRead`, built once per shape (tier, number of readings or words) with
bound parameters and run on the read pool: building a union of selects anew costs more than running it.
Every table a statement reads is filtered by `:tenant_id` (tests/patients/test_patient_reads.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from psycopg.rows import DictRow
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.sql.elements import BindParameter

from core.database import TENANT_PARAMETER
from core.reads import TenantRead, TenantReads
from domain.patients.models import Patient, patient_name_terms
from domain.patients.schemas import PatientSimpleResponse

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


_P = Patient.__table__.c
FIRST, LAST = _P.first_name_key, _P.last_name_key
COLUMNS = [_P[name] for name in PatientSimpleResponse.model_fields]
TENANT = _p(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
LIMIT = _p("limit", type_=Integer)
# The patients an earlier tier found: an array, so the statement's text is the same however many there are.
NOT_FOUND_YET = _P.id != all_(_p("exclude", type_=ARRAY(PG_UUID(as_uuid=True))))
# The query's key when it is not plain ASCII (`prm_name_key`). It reads no table: the tenant parameter is
# there because every `TenantRead` takes one.
KEY = TenantRead.of(
    select(func.prm_name_key(_p("query", type_=Text)).label("key")).where(TENANT.is_not(None))
)


async def search_names(reads: TenantReads, query: str, limit: int) -> list[DictRow]:
    """Up to `limit` of the tenant's patients matching `query` by name, best first (see the module doc)."""
    words = tuple((await _key(reads, query)).split()[:MAX_WORDS])
    if not words:
        return []
    found: dict[uuid.UUID, DictRow] = {}
    for tier in (_exact_or_prefix, _fuzzy):
        read, params = tier(words)
        params |= {"limit": limit - len(found), "exclude": list(found)}
        for row in await reads.all(read, **params):
            found.setdefault(row["id"], row)
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


async def _key(reads: TenantReads, query: str) -> str:
    """The query as names are keyed (`prm_name_key`): computed here for plain ASCII (lower-cased, nothing to
    unaccent), by PostgreSQL's unaccent rules otherwise (one round trip)."""
    if query.isascii():
        return query.lower()
    row = await reads.one(KEY, query=query)
    return (row["key"] if row else None) or ""


def _exact_or_prefix(words: tuple[str, ...]) -> tuple[TenantRead, Params]:
    if len(words) == 1:
        return _exact_or_prefix_statement(0), _prefix_params("w", words[0])
    readings = _splits(words)
    params: Params = {}
    for i, (f, la) in enumerate(readings):
        params |= _prefix_params(f"f{i}", f) | _prefix_params(f"l{i}", la)
    return _exact_or_prefix_statement(len(readings)), params


@cache
def _exact_or_prefix_statement(readings: int) -> TenantRead:
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


def _page(branches: list[Branch]) -> TenantRead:
    """The first `limit` patients of the branches together: each branch reads at most `limit` rows in its
    index order, the union is sorted by (tier, first key, second key, id)."""
    parts = [
        select(*COLUMNS, literal_column(str(tier)).label("tier"), key1.label("k1"), key2.label("k2"))
        .where(_P.tenant_id == TENANT, NOT_FOUND_YET, condition)
        .order_by(key1, key2, _P.id)
        .limit(LIMIT)
        for tier, condition, key1, key2 in branches
    ]
    union = union_all(*parts).subquery()
    return TenantRead.of(
        select(*(union.c[c.name] for c in COLUMNS))
        .order_by(union.c.tier, union.c.k1, union.c.k2, union.c.id)
        .limit(LIMIT)
    )


def _fuzzy(words: tuple[str, ...]) -> tuple[TenantRead, Params]:
    """Tier 3 for the words: the patients of the closest terms (one word) or pairs of terms (several)."""
    if len(words) == 1:
        return _by_term_statement(), _term_params(list(words))
    splits = _splits(words)
    parts = list(dict.fromkeys(p for s in splits for p in s))
    params = _term_params(parts) | {
        "reading_firsts": [parts.index(first) for first, _ in splits],
        "reading_lasts": [parts.index(last) for _, last in splits],
    }
    return _by_pair_statement(len(parts)), params


def _term_params(parts: list[str]) -> Params:
    """What the vocabulary lookup of each part (`_close_terms`) needs."""
    params: Params = {}
    for n, part in enumerate(parts):
        escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params |= {
            f"part{n}": part,
            f"inside{n}": f"%{escaped}%",
            # "ol" is someone typing, not a typo of "al": no variants for words that short
            f"variants{n}": _one_edit_away(part) if len(part) >= MIN_TYPO_WORD else [],
            f"long{n}": len(part) >= SIMILAR_WORD,
        }
    return params


def _closest(n: int, close: ColumnElement[bool]) -> Select[Any]:
    """The TERM_CANDIDATES terms of the tenant closest to part `n` among those `close` selects."""
    term, part = patient_name_terms.c.term, _p(f"part{n}", type_=Text)
    distance = func.levenshtein_less_equal(term, part, 3)
    similarity = func.similarity(term, part)
    return (
        select(
            literal_column(str(n)).label("part"),
            term,
            distance.label("distance"),
            similarity.label("similarity"),
        )
        .where(patient_name_terms.c.tenant_id == TENANT, close)
        .order_by(distance, similarity.desc(), term)
        .limit(TERM_CANDIDATES)
    )


def _close_terms(parts: int) -> Any:
    """The tenant's name terms close to each of `parts` words (columns part, term, distance, similarity), at
    most TERM_CANDIDATES each, the closest by edit distance, then similarity: one edit away (primary-key
    lookups of every variant) or containing the word (the trigram GIN index). A word of SIMILAR_WORD
    letters or more that finds none is then matched by trigram similarity (pg_trgm's `%`, threshold 0.3:
    two typos in a long name), which lets the GIN index return many more candidates, hence only then (a
    one-time filter: the scan does not start otherwise)."""
    term = patient_name_terms.c.term
    found = []
    for n in range(parts):
        part = _p(f"part{n}", type_=Text)
        # `ARRAY(SELECT unnest(...))`, not the parameter itself: the planner then cannot count the variants
        # (600 for an 11-letter word), which would make it prefer the trigram index over the primary key
        # for the equality (45 ms instead of 1).
        variants = func.array(select(func.unnest(_p(f"variants{n}", type_=ARRAY(Text)))).scalar_subquery())
        one_edit = _closest(n, or_(term == any_(variants), term.like(_p(f"inside{n}"), escape="\\"))).cte(
            f"one_edit_{n}"
        )
        similar = _closest(
            n, and_(_p(f"long{n}", type_=Boolean), ~exists(one_edit.select()), term.bool_op("%")(part))
        ).cte(f"similar_{n}")
        found += [one_edit.select(), similar.select()]
    return union_all(*found).cte("close_terms")


@cache
def _by_term_statement() -> TenantRead:
    """Patients whose first or last name is one of the terms close to the word (`_close_terms`), the
    closest term first, then by the other name."""
    terms = _close_terms(1)
    rank = func.row_number().over(order_by=(terms.c.distance, terms.c.similarity.desc(), terms.c.term))
    ranked = select(terms.c.term, rank.label("rank")).order_by(rank).subquery("ranked")
    branches = [
        select(*COLUMNS, other.label("k2"))
        .where(_P.tenant_id == TENANT, NOT_FOUND_YET, column == ranked.c.term)
        .order_by(other, _P.id)
        .limit(LIMIT)
        for column, other in ((FIRST, LAST), (LAST, FIRST))
    ]
    matches = union_all(*branches).lateral("matches")
    return TenantRead.of(
        select(*(matches.c[c.name] for c in COLUMNS))
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.k2, matches.c.id)
        .limit(LIMIT)
    )


@cache
def _by_pair_statement(parts: int) -> TenantRead:
    """Patients whose (first, last) name is a pair of terms close to a (first, last) reading of the words
    (`reading_firsts`, `reading_lasts`: the index of each part), the closest pair first."""
    terms = _close_terms(parts)
    readings = (
        func.unnest(_p("reading_firsts", type_=ARRAY(Integer)), _p("reading_lasts", type_=ARRAY(Integer)))
        .table_valued("first_part", "last_part")
        .render_derived()
    )
    f, la = terms.alias("f"), terms.alias("l")
    rank = func.row_number().over(
        order_by=(
            f.c.distance + la.c.distance,
            (func.float8(f.c.similarity) + func.float8(la.c.similarity)).desc(),
            f.c.term,
            la.c.term,
        )
    )
    ranked = (
        select(f.c.term.label("first"), la.c.term.label("last"), rank.label("rank"))
        .select_from(readings)
        .join(f, f.c.part == readings.c.first_part)
        .join(la, la.c.part == readings.c.last_part)
        .order_by(rank)
        .subquery("ranked")
    )
    matches = (
        select(*COLUMNS)
        .where(_P.tenant_id == TENANT, NOT_FOUND_YET, FIRST == ranked.c.first, LAST == ranked.c.last)
        .order_by(_P.id)
        .limit(LIMIT)
        .lateral("matches")
    )
    return TenantRead.of(
        select(*(matches.c[c.name] for c in COLUMNS))
        .select_from(ranked)
        .join(matches, true())
        .order_by(ranked.c.rank, matches.c.id)
        .limit(LIMIT)
    )
