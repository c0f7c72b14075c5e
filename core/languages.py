"""Language tags (BCP 47): the one place that validates, normalises and falls back.

A tag is checked and normalised by `langcodes` (IANA's subtag registry): `ES-mx` becomes `es-MX`, `spa`
becomes `es`, `pt_BR` becomes `pt-BR`; extensions and private-use parts are dropped, so what is stored is
language[-script][-region]. A message picks its language along `fallback_chain`: the patient's tag, its
shorter forms (`es-MX`, then `es`), the tenant's default (and its shorter forms), then English.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import langcodes
from pydantic import AfterValidator, Field

ENGLISH = "en"
LANGUAGE_SUBTAG = re.compile("[a-z]{2,3}")
MAX_TAG_LENGTH = 16  # the width of every language column (patients.preferred_language's first)


def normalise(value: str) -> str:
    """The normalised tag (`es-MX`); ValueError naming the problem when `value` is not a language tag."""
    text = value.strip()
    try:
        language = langcodes.Language.get(langcodes.standardize_tag(text)) if text else None
    except (langcodes.LanguageTagError, ValueError):
        language = None
    # A private-use tag (`x-...`) parses as a "language" of its own: only a real 2-3 letter one is taken.
    if language is None or not LANGUAGE_SUBTAG.fullmatch(language.language or "") or not language.is_valid():
        raise ValueError("is not a language tag (e.g. 'en' or 'es-MX')")
    tag = langcodes.Language.make(
        language=language.language, script=language.script, territory=language.territory
    ).to_tag()
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"is longer than {MAX_TAG_LENGTH} characters")
    return tag


def normalised_or_none(value: str | None) -> str | None:
    """The normalised tag, or None for a missing or unusable one (data stored before tags were checked)."""
    if not value:
        return None
    try:
        return normalise(value)
    except ValueError:
        return None


def shorter_forms(tag: str) -> list[str]:
    """`zh-Hans-CN` -> [`zh-Hans-CN`, `zh-Hans`, `zh`]: the tag, then each shorter form to fall back to."""
    parts = tag.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def fallback_chain(*tags: str | None) -> list[str]:
    """The languages to try, best first: each usable tag with its shorter forms, in order, then English."""
    chain: list[str] = []
    for tag in (*tags, ENGLISH):
        normalised = normalised_or_none(tag)
        for form in shorter_forms(normalised) if normalised else ():
            if form not in chain:
                chain.append(form)
    return chain


def primary(tag: str) -> str:
    """The language subtag alone (`es` of `es-MX`)."""
    return tag.split("-", 1)[0]


def fold(text: str) -> str:
    """`text` lower-cased with its accents removed (`SÍ` -> `si`, `Baja` -> `baja`): how a reply's words
    are compared, whatever the patient's keyboard."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words of a patient's reply, folded (`fold`): `"¡Sí, gracias!"` -> [`si`, `gracias`]."""
    return WORD.findall(fold(text))


def _checked(value: str) -> str:
    """A language tag in IANA's registry, with a 2-3 letter language (`en`, `es-MX`); normalised."""
    return normalise(value)


LanguageTag = Annotated[
    str,
    Field(max_length=35, description="A BCP 47 language tag such as 'en' or 'es-MX' (normalised)"),
    AfterValidator(_checked),
]
"""A language tag in a request: validated and normalised (422 otherwise)."""
