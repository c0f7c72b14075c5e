"""The words patients answer automated messages with, per language: the one table to extend for a new
language (beside its texts in `builtin_templates`).

Replies are compared folded (`core.languages.fold`: lower case, accents removed, so `SÍ`, `Sí` and `si`
are one word), and every language's words are accepted from every patient: a Spanish speaker may still
answer YES, and a patient's language may not be recorded at all.

Consent keywords are the whole message (surrounding whitespace ignored), as Twilio matches its own. The
English ones are Twilio's defaults, which Twilio also applies at its edge; the Spanish ones are honoured by
this service (the send policy refuses the channel), not by Twilio. Words a patient may well send for
another reason are left out on purpose: `NO` (the answer to an offer), `CANCELAR` (a patient cancelling
an appointment), `SALIR`, `FIN`.
"""

from __future__ import annotations

from collections.abc import Mapping

from core import languages

# Accepting or declining an offer (a waitlist offer): any of these words in the reply.
YES: Mapping[str, frozenset[str]] = {
    "en": frozenset(
        {"yes", "y", "yeah", "yep", "ok", "okay", "sure", "accept", "book", "confirm", "si", "oui"}
    ),
    "es": frozenset(
        {"si", "vale", "claro", "acepto", "aceptar", "reservar", "reservo", "confirmo", "confirmar"}
    ),
}
NO: Mapping[str, frozenset[str]] = {
    "en": frozenset({"no", "n", "nope", "pass", "decline", "skip"}),
    "es": frozenset({"no", "paso", "rechazo", "rechazar"}),
}

# Naming an offered option by its place in the list (numbers and times are read without words).
# `una` is left out: "a la una" is one o'clock.
ORDINALS: Mapping[str, Mapping[str, int]] = {
    "en": {
        "first": 1, "one": 1, "1st": 1,
        "second": 2, "two": 2, "2nd": 2,
        "third": 3, "three": 3, "3rd": 3,
        "fourth": 4, "four": 4, "4th": 4,
        "fifth": 5, "five": 5, "5th": 5,
        "sixth": 6, "six": 6, "seventh": 7, "seven": 7, "eighth": 8, "eight": 8, "ninth": 9, "nine": 9,
    },
    "es": {
        "primero": 1, "primera": 1, "primer": 1, "uno": 1, "1o": 1, "1a": 1,
        "segundo": 2, "segunda": 2, "dos": 2, "2o": 2, "2a": 2,
        "tercero": 3, "tercera": 3, "tercer": 3, "tres": 3, "3o": 3, "3a": 3,
        "cuarto": 4, "cuarta": 4, "cuatro": 4, "4o": 4, "4a": 4,
        "quinto": 5, "quinta": 5, "cinco": 5, "5o": 5, "5a": 5,
        "sexto": 6, "sexta": 6, "seis": 6, "septimo": 7, "septima": 7, "siete": 7,
        "octavo": 8, "octava": 8, "ocho": 8, "noveno": 9, "novena": 9, "nueve": 9,
    },
}  # fmt: skip

# Consent keywords (folded, upper case as Twilio writes them).
OPT_OUT_KEYWORDS: Mapping[str, frozenset[str]] = {
    "en": frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}),
    "es": frozenset({"BAJA", "PARAR", "ALTO", "DETENER", "DESUSCRIBIR"}),
}
OPT_IN_KEYWORDS: Mapping[str, frozenset[str]] = {
    "en": frozenset({"START", "UNSTOP", "YES"}),
    "es": frozenset({"ALTA", "SI"}),
}


def every_language(table: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The words of every language of `table` together."""
    return frozenset().union(*table.values())


def ordinal_of(word: str) -> int | None:
    """The place an (already folded) word names in any language (`second`, `segunda`), or None."""
    for ordinals in ORDINALS.values():
        if word in ordinals:
            return ordinals[word]
    return None


def keyword_of(text: str | None) -> str:
    """A whole message as a consent keyword would read (`" Sí "` -> `SI`)."""
    return languages.fold((text or "").strip()).upper()
