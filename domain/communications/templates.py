"""The built-in message templates, and the one place that renders message text.

Templates are Jinja2 text rendered in a bounded sandbox (`sandbox`: a budget of steps, time and sizes) with
`StrictUndefined`: a template can read only the variables it is given, and a missing variable is an error,
never an empty string in a patient's message. A journey action that names a template must supply every
variable the template needs except the `SYSTEM_VARIABLES`, which the service fills from the patient, the
appointment and the clinic at send time.

A template id has a variant per language (built-in ones in `builtin_templates`, a tenant's as rows); a
message takes the variant `choose` finds along the patient's fallback chain (`core.languages`), and the
system variables speak that variant's language (`format_day`, `phrase`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta

from core import languages
from core.languages import ENGLISH
from domain.communications import sandbox
from domain.communications.builtin_templates import BUILTIN_TEXTS, PHRASES, BuiltinText
from domain.communications.sandbox import BoundedSandbox
from domain.enums import Channel

# Filled by the service when a message is rendered; a journey action never needs to supply them.
SYSTEM_VARIABLES: frozenset[str] = frozenset(
    {
        "patient_name",  # the patient's full name
        "patient_first_name",
        # "Dr. <first> <last>" ("Dra." for a woman in Spanish) of the appointment, else "your care team"
        "practitioner_name",
        # "Mon 3 Feb 2025" (in the message's language) and "14:30", in the appointment's location's time
        # zone, else the tenant's (both need an appointment)
        "appointment_date",
        "appointment_time",
        "clinic_name",  # the tenant's name
    }
)
APPOINTMENT_VARIABLES: frozenset[str] = frozenset({"appointment_date", "appointment_time"})
CATEGORIES = ("appointment", "instructions", "follow_up", "results", "pharmacy", "billing", "general")


class TemplateError(ValueError):
    """A template is unknown, malformed, or was rendered without one of its variables."""


class UnknownTemplate(TemplateError):
    """No template (built-in, or the tenant's active one) has this id."""


_env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    """Compile once: `from_string` has no cache, and every reminder and journey message renders a template."""
    return _env.from_string(text)


@lru_cache(maxsize=1024)
def variables_of(text: str) -> frozenset[str]:
    """The variables a piece of template text reads (parsed once per text: a journey's every message asks)."""
    try:
        return frozenset(meta.find_undeclared_variables(_env.parse(text)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except (RecursionError, MemoryError) as exc:  # nesting past what the parser can follow
        raise TemplateError("template syntax error: the template nests too deeply") from exc


def compile_text(text: str) -> frozenset[str]:
    """Compile template text in the sandbox (syntax, unknown filters and tests) and return its variables."""
    try:
        _compiled(text)
    except TemplateSyntaxError as exc:  # also TemplateAssertionError (an unknown filter or test)
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except (SyntaxError, RecursionError, MemoryError) as exc:  # nesting past what Python compiles
        raise TemplateError("template syntax error: the template nests too deeply") from exc
    return variables_of(text)


def render_text(text: str, variables: dict[str, Any]) -> str:
    """Render template text in the sandbox, within its budget (`sandbox`); a missing variable, or a template
    past a bound, raises TemplateError."""
    try:
        return sandbox.render(_compiled(text), variables)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise TemplateError("template syntax error: the template nests too deeply") from exc
    except Exception as exc:  # UndefinedError, SecurityError, ...: never echo the variables (PHI)
        raise TemplateError(f"template could not be rendered: {type(exc).__name__}: {exc}") from exc


async def render_off_loop(texts: Sequence[str | None], variables: dict[str, Any]) -> list[str | None]:
    """Render each text (None stays None) with the same variables, in a worker thread: a render is bounded
    (`sandbox`) but CPU-bound, and the event loop serves every tenant's requests meanwhile."""

    def rendered() -> list[str | None]:
        return [None if text is None else render_text(text, variables) for text in texts]

    return await asyncio.to_thread(rendered)


@dataclass(frozen=True)
class MessageTemplate:
    """A predefined message in one language: `{{ variables }}` in its subject and body are filled at send
    time. A template id may have a variant per language (`language`, a normalised BCP 47 tag).

    A tenant's WhatsApp template may name its approved Twilio Content template: `whatsapp_content_sid`, and
    the variables whose values fill its `{{1}}`, `{{2}}`, ... in order (`whatsapp_content_variables`)."""

    id: str
    name: str
    channel: Channel
    category: str
    subject: str
    body: str
    variables: list[str] = field(default_factory=list)
    whatsapp_content_sid: str | None = None
    whatsapp_content_variables: tuple[str, ...] = ()
    language: str = ENGLISH

    def render(self, variables: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) with `variables` filled in."""
        return render_text(self.subject, variables), render_text(self.body, variables)

    def whatsapp_content(self, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The Content template and its placeholder values (`{"1": ..., "2": ...}`), or None without one.

        Raises TemplateError when a variable it needs was not given (never sent with a blank placeholder)."""
        if self.whatsapp_content_sid is None:
            return None
        missing = sorted(set(self.whatsapp_content_variables) - set(variables))
        if missing:
            raise TemplateError(f"the WhatsApp Content template needs {', '.join(missing)}")
        values = {str(n): str(variables[v]) for n, v in enumerate(self.whatsapp_content_variables, start=1)}
        return {"sid": self.whatsapp_content_sid, "variables": values}


def _builtin(text: BuiltinText, language: str) -> MessageTemplate:
    subject, body = text.text[language]
    names = sorted(variables_of(subject) | variables_of(body))
    return MessageTemplate(
        text.id, text.name, text.channel, text.category, subject, body, names, language=language
    )


# Every built-in template in every language it has, English first.
BUILTIN_TEMPLATES: tuple[MessageTemplate, ...] = tuple(
    _builtin(text, language)
    for text in BUILTIN_TEXTS
    for language in sorted(text.text, key=lambda tag: (tag != ENGLISH, tag))
)


@lru_cache
def _by_id() -> dict[str, list[MessageTemplate]]:
    variants: dict[str, list[MessageTemplate]] = {}
    for template in BUILTIN_TEMPLATES:
        variants.setdefault(template.id, []).append(template)
    return variants


def builtin_variants(template_id: str) -> list[MessageTemplate]:
    """Every language of the built-in template with this id (empty when there is none)."""
    return list(_by_id().get(template_id, ()))


def get_template(template_id: str, language: str = ENGLISH) -> MessageTemplate | None:
    """The built-in template with this id in the best language for `language`, or None."""
    return choose(builtin_variants(template_id), languages.fallback_chain(language))


def is_builtin(template_id: str) -> bool:
    """Whether `template_id` is a built-in template's id (a tenant's template may not take it)."""
    return template_id in _by_id()


def choose(variants: Sequence[MessageTemplate], chain: Sequence[str]) -> MessageTemplate | None:
    """The variant in the first language of `chain` that has one; else (a template nobody wrote in any of
    those languages) the variant whose tag sorts first, so a message is never lost for want of a language.
    None when there are no variants."""
    by_language = {v.language: v for v in variants}
    for language in chain:
        if language in by_language:
            return by_language[language]
    return by_language[min(by_language)] if by_language else None


def from_record(record: Any) -> MessageTemplate:
    """A tenant's `CommunicationTemplate` row as a MessageTemplate (rendered the same way as built-ins)."""
    return MessageTemplate(
        record.key,
        record.name,
        Channel(record.channel),
        record.category,
        record.subject,
        record.body,
        list(record.variables),
        record.whatsapp_content_sid,
        tuple(record.whatsapp_content_variables or ()),
        record.language,
    )


async def template_variants(session: Any, template_id: str) -> list[MessageTemplate]:
    """The built-in template's languages, else the session tenant's active variants of this id."""
    builtin = builtin_variants(template_id)
    if builtin:
        return builtin
    from sqlalchemy import select

    from domain.communications.models import CommunicationTemplate

    records = await session.scalars(
        select(CommunicationTemplate).where(
            CommunicationTemplate.key == template_id, CommunicationTemplate.is_active.is_(True)
        )
    )
    return [from_record(record) for record in records]


async def resolve_template(session: Any, template_id: str, chain: Sequence[str]) -> MessageTemplate | None:
    """The template with this id (built-in, else the tenant's active one) in the best language of `chain`."""
    return choose(await template_variants(session, template_id), chain)


def list_templates(
    channel: str | None = None, category: str | None = None, language: str | None = None
) -> list[MessageTemplate]:
    """Built-in templates (each language a variant), optionally filtered by channel, category, language."""
    return [
        t
        for t in BUILTIN_TEMPLATES
        if (channel is None or t.channel.value == channel)
        and (category is None or t.category == category)
        and (language is None or t.language == language)
    ]


def required_variables(template_id: str) -> set[str]:
    """The variables a caller must supply for a template (all its languages read minus the system-filled)."""
    variants = builtin_variants(template_id)
    if not variants:
        raise TemplateError(f"unknown template {template_id!r}")
    return set().union(*(v.variables for v in variants)) - SYSTEM_VARIABLES


def missing_variables(
    text_or_template_id: str, provided: dict[str, Any], *, is_template_id: bool
) -> set[str]:
    """Variables a template (by id) or literal text needs that neither `provided` nor the system fills."""
    if is_template_id:
        return required_variables(text_or_template_id) - set(provided)
    return set(variables_of(text_or_template_id) - SYSTEM_VARIABLES - set(provided))


def missing_from(template: MessageTemplate, provided: dict[str, Any]) -> set[str]:
    """Variables `template` reads that neither `provided` nor the system fills."""
    return set(template.variables) - SYSTEM_VARIABLES - set(provided)


def to_snapshot(variants: Sequence[MessageTemplate]) -> dict[str, Any]:
    """A template's variants as plain JSON, kept where later edits must not reach them (a journey instance's
    snapshot)."""
    return {
        "variants": [
            {
                "language": t.language,
                "name": t.name,
                "channel": t.channel.value,
                "category": t.category,
                "subject": t.subject,
                "body": t.body,
                "variables": list(t.variables),
                "whatsapp_content_sid": t.whatsapp_content_sid,
                "whatsapp_content_variables": list(t.whatsapp_content_variables),
            }
            for t in variants
        ]
    }


def from_snapshot(template_id: str, kept: dict[str, Any]) -> list[MessageTemplate]:
    """The variants `to_snapshot` kept, with the text they had then (a snapshot taken before templates had
    languages holds one, in English)."""
    return [
        MessageTemplate(
            id=template_id,
            name=one["name"],
            channel=Channel(one["channel"]),
            category=one.get("category", "general"),
            subject=one.get("subject", ""),
            body=one["body"],
            variables=list(one.get("variables", [])),
            whatsapp_content_sid=one.get("whatsapp_content_sid"),
            whatsapp_content_variables=tuple(one.get("whatsapp_content_variables") or ()),
            language=one.get("language", ENGLISH),
        )
        for one in kept.get("variants", [kept])
    ]


def phrase(name: str, language: str | None) -> str:
    """One of the words the service fills in itself (`PHRASES`), in `language` or its fallback."""
    table = PHRASES[name]
    for tag in languages.fallback_chain(language):
        if tag in table:
            return table[tag]
    return table[ENGLISH]


def format_day(day: date, language: str | None) -> str:
    """A date as a message says it: `Mon 3 Feb 2025` in English, CLDR's full form (`lunes, 3 de febrero de
    2025`) in any language Babel knows, English for one it does not."""
    tag = languages.normalised_or_none(language) or ENGLISH
    locale = _babel_locale(tag) if languages.primary(tag) != ENGLISH else None
    if locale is not None:
        return babel_dates.format_date(day, "full", locale=locale)
    return f"{day:%a} {day.day} {day:%b %Y}"


def _babel_locale(tag: str) -> Locale | None:
    """Babel's locale for `tag` or its nearest shorter form, or None when Babel knows none of them."""
    for form in languages.shorter_forms(tag):
        try:
            return Locale.parse(form, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return None


def format_moment(local: datetime, language: str | None) -> str:
    """A local date and time as a chat message says it: `Tue 3 Dec, 9:00 AM` in English (`09:00` in
    British English: `format_time`), CLDR's abbreviated day and month (`mar, 3 dic, 9:00`) in any language
    Babel knows, English for one it does not."""
    tag = languages.normalised_or_none(language) or ENGLISH
    locale = _babel_locale(tag) if languages.primary(tag) != ENGLISH else None
    if locale is not None:
        return f"{babel_dates.format_skeleton('MMMEd', local, locale=locale)}, {format_time(local, tag)}"
    return f"{local:%a} {local.day} {local:%b}, {format_time(local, tag)}"


def format_time(local: datetime | time, language: str | None) -> str:
    """A local time as the language's locale writes it (CLDR's short time, by Babel): `9:00 AM` in `en`
    and `en-US`, `09:00` in `en-GB`, `9:00` in `es`, `9:00 a.m.` in `es-MX`; `HH:MM` in a language Babel
    does not know. The narrow and non-breaking spaces CLDR puts before AM/PM are written as plain spaces:
    either would make an SMS go as UCS-2, at less than half the characters per segment."""
    moment = local.time() if isinstance(local, datetime) else local
    locale = _babel_locale(languages.normalised_or_none(language) or ENGLISH)
    if locale is None:
        return f"{moment:%H:%M}"
    written = babel_dates.format_time(moment, "short", locale=locale)
    return written.replace("\u202f", " ").replace("\u00a0", " ")


def regional_form(chosen: str, chain: Sequence[str]) -> str:
    """The tag a message written in `chosen` formats its times in: the first regional form of `chosen` in
    the patient's `chain` (`en-GB` for a built-in `en` template and a patient who prefers `en-GB`), else
    `chosen` itself. Dates, titles and phrases read the same either way (they fall back to `chosen`)."""
    for tag in chain:
        if tag.startswith(f"{chosen}-"):
            return tag
    return chosen


def practitioner_title(name: str, gender: str | None, language: str | None) -> str:
    """`Dr. Lovelace` (`Dra. Ruiz` for a woman in Spanish): a practitioner's name with their title."""
    title = phrase("doctor_female" if gender == "female" else "doctor", language)
    return f"{title} {name}"
