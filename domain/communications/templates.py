"""The built-in message templates, and the one place that renders message text.

Templates are Jinja2 text rendered in a `SandboxedEnvironment` with `StrictUndefined`: a template can read
only the variables it is given, and a missing variable is an error, never an empty string in a patient's
message. A journey action that names a template must supply every variable the template needs except the
`SYSTEM_VARIABLES`, which the service fills from the patient, the appointment and the clinic at send time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from domain.enums import Channel

# Filled by the service when a message is rendered; a journey action never needs to supply them.
SYSTEM_VARIABLES: frozenset[str] = frozenset(
    {
        "patient_name",  # the patient's full name
        "patient_first_name",
        "practitioner_name",  # "Dr. <first> <last>" of the instance's appointment, else "your care team"
        "appointment_date",  # e.g. "Mon 3 Feb 2025", in the tenant's time zone (needs an appointment)
        "appointment_time",  # e.g. "14:30", in the tenant's time zone (needs an appointment)
        "clinic_name",  # the tenant's name
    }
)
APPOINTMENT_VARIABLES: frozenset[str] = frozenset({"appointment_date", "appointment_time"})
CATEGORIES = ("appointment", "instructions", "follow_up", "results", "pharmacy", "billing", "general")


class TemplateError(ValueError):
    """A template is unknown, malformed, or was rendered without one of its variables."""


MAX_RENDERED_CHARS = 20_000  # far past any SMS (1,600) or WhatsApp (4,096) body; an email's text fits
MAX_LOOP_ITEMS = 1_000  # `range()` in a template
MAX_POWER = 64


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with its operations bounded too: `'x' * 10000000` or `9 ** 9999999` would build
    a huge value before any output check could see it, and `range()` sizes the loops a template can run.
    (The rendered text is bounded in `render_text`, as it streams.)"""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse a repetition or a power whose result would be too large."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_RENDERED_CHARS:
                        raise SecurityError("a repetition in the template is too large")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError("a power in the template is too large")
        return super().call_binop(context, operator, left, right)


def _bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_LOOP_ITEMS:
        raise SecurityError(f"range() in a template is limited to {MAX_LOOP_ITEMS} items")
    return values


_env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_env.globals["range"] = _bounded_range


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    """Compile once: `from_string` has no cache, and every reminder and journey message renders a template."""
    return _env.from_string(text)


def variables_of(text: str) -> set[str]:
    """The variables a piece of template text reads."""
    try:
        return set(meta.find_undeclared_variables(_env.parse(text)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc


def compile_text(text: str) -> set[str]:
    """Compile template text in the sandbox (syntax, unknown filters and tests) and return its variables."""
    try:
        _compiled(text)
    except TemplateSyntaxError as exc:  # also TemplateAssertionError (an unknown filter or test)
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    return variables_of(text)


def render_text(text: str, variables: dict[str, Any]) -> str:
    """Render template text in the sandbox; a missing variable raises TemplateError."""
    try:
        rendered: list[str] = []
        size = 0
        for chunk in _compiled(text).generate(**variables):  # streamed: a runaway loop stops early
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise TemplateError(f"the template renders longer than {MAX_RENDERED_CHARS} characters")
            rendered.append(chunk)
        return "".join(rendered)
    except TemplateError:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except Exception as exc:  # UndefinedError, SecurityError, ...: never echo the variables (PHI)
        raise TemplateError(f"template could not be rendered: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class MessageTemplate:
    """A predefined message: `{{ variables }}` in its subject and body are filled at send time.

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


def _template(
    id: str, name: str, channel: Channel, category: str, subject: str, body: str
) -> MessageTemplate:
    names = sorted(variables_of(subject) | variables_of(body))
    return MessageTemplate(id, name, channel, category, subject, body, names)


BUILTIN_TEMPLATES: tuple[MessageTemplate, ...] = (
    _template(
        "apt_reminder",
        "Appointment Reminder",
        Channel.WHATSAPP,
        "appointment",
        "Appointment Reminder",
        "Hi {{ patient_first_name }}, this is a reminder of your appointment with {{ practitioner_name }} "
        "on {{ appointment_date }} at {{ appointment_time }} at {{ clinic_name }}. Reply C to confirm.",
    ),
    _template(
        "apt_confirmation",
        "Appointment Confirmation",
        Channel.SMS,
        "appointment",
        "Appointment Confirmed",
        "{{ clinic_name }}: your appointment with {{ practitioner_name }} is confirmed for "
        "{{ appointment_date }} at {{ appointment_time }}.",
    ),
    _template(
        "pre_procedure_instructions",
        "Pre-Procedure Instructions",
        Channel.EMAIL,
        "instructions",
        "Preparing for your {{ procedure_name }}",
        "Dear {{ patient_name }},\n\nYour {{ procedure_name }} is on {{ appointment_date }} at "
        "{{ appointment_time }}. Please do not eat or drink for {{ fasting_hours }} hours before it.\n\n"
        "{{ clinic_name }}",
    ),
    _template(
        "post_op_welcome",
        "Post-Surgery Welcome",
        Channel.WHATSAPP,
        "follow_up",
        "Welcome home",
        "Hi {{ patient_first_name }}, welcome home from {{ clinic_name }}. We'll check in on your recovery "
        "over the next days. Reply here any time if something worries you.",
    ),
    _template(
        "recovery_check_in",
        "Recovery Check-in",
        Channel.WHATSAPP,
        "follow_up",
        "How are you feeling?",
        "Hi {{ patient_first_name }}, how is your recovery going? Please reply with how you feel today "
        "(pain 0-10) so {{ practitioner_name }} can follow up.",
    ),
    _template(
        "lab_results_ready",
        "Lab Results Ready",
        Channel.SMS,
        "results",
        "Your results are ready",
        "{{ clinic_name }}: the results of your {{ test_name }} are ready. Log in to the portal or call us "
        "to discuss them with {{ practitioner_name }}.",
    ),
    _template(
        "prescription_ready",
        "Prescription Ready",
        Channel.SMS,
        "pharmacy",
        "Prescription ready for pickup",
        "Hi {{ patient_first_name }}, your prescription is ready for pickup at {{ pharmacy_name }}.",
    ),
    _template(
        "payment_reminder",
        "Payment Reminder",
        Channel.EMAIL,
        "billing",
        "Payment reminder from {{ clinic_name }}",
        "Dear {{ patient_name }},\n\nA balance of {{ amount_due }} is due on {{ due_date }}. "
        "Reply to this email if you have any questions.\n\n{{ clinic_name }}",
    ),
    _template(
        "general_message",
        "General Message",
        Channel.SMS,
        "general",
        "Message from {{ clinic_name }}",
        "Hi {{ patient_first_name }}, {{ message }}",
    ),
    _template(
        "feedback_request",
        "Feedback Request",
        Channel.EMAIL,
        "follow_up",
        "How was your visit?",
        "Dear {{ patient_name }},\n\nThank you for visiting {{ clinic_name }}. We'd love to hear how your "
        "visit with {{ practitioner_name }} went: just reply to this email.",
    ),
)


@lru_cache
def _by_id() -> dict[str, MessageTemplate]:
    return {t.id: t for t in BUILTIN_TEMPLATES}


def get_template(template_id: str) -> MessageTemplate | None:
    """The built-in template with this id, or None."""
    return _by_id().get(template_id)


def is_builtin(template_id: str) -> bool:
    """Whether `template_id` is a built-in template's id (a tenant's template may not take it)."""
    return template_id in _by_id()


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
    )


async def resolve_template(session: Any, template_id: str) -> MessageTemplate | None:
    """The built-in template, else the session tenant's active template with this id, else None."""
    builtin = get_template(template_id)
    if builtin is not None:
        return builtin
    from sqlalchemy import select

    from domain.communications.models import CommunicationTemplate

    record = await session.scalar(
        select(CommunicationTemplate).where(
            CommunicationTemplate.key == template_id, CommunicationTemplate.is_active.is_(True)
        )
    )
    return from_record(record) if record is not None else None


def list_templates(channel: str | None = None, category: str | None = None) -> list[MessageTemplate]:
    """Built-in templates, optionally filtered by channel and category."""
    return [
        t
        for t in BUILTIN_TEMPLATES
        if (channel is None or t.channel.value == channel) and (category is None or t.category == category)
    ]


def required_variables(template_id: str) -> set[str]:
    """The variables a caller must supply for a template (all it reads minus the system-filled ones)."""
    template = get_template(template_id)
    if template is None:
        raise TemplateError(f"unknown template {template_id!r}")
    return set(template.variables) - SYSTEM_VARIABLES


def missing_variables(
    text_or_template_id: str, provided: dict[str, Any], *, is_template_id: bool
) -> set[str]:
    """Variables a template (by id) or literal text needs that neither `provided` nor the system fills."""
    if is_template_id:
        needed = required_variables(text_or_template_id)
    else:
        needed = variables_of(text_or_template_id) - SYSTEM_VARIABLES
    return needed - set(provided)


def missing_from(template: MessageTemplate, provided: dict[str, Any]) -> set[str]:
    """Variables `template` reads that neither `provided` nor the system fills."""
    return set(template.variables) - SYSTEM_VARIABLES - set(provided)


def to_snapshot(template: MessageTemplate) -> dict[str, Any]:
    """A template as plain JSON, kept where later edits must not reach it (a journey instance's snapshot)."""
    return {
        "name": template.name,
        "channel": template.channel.value,
        "category": template.category,
        "subject": template.subject,
        "body": template.body,
        "variables": list(template.variables),
        "whatsapp_content_sid": template.whatsapp_content_sid,
        "whatsapp_content_variables": list(template.whatsapp_content_variables),
    }


def from_snapshot(template_id: str, kept: dict[str, Any]) -> MessageTemplate:
    """The template `to_snapshot` kept, with the text it had then."""
    return MessageTemplate(
        id=template_id,
        name=kept["name"],
        channel=Channel(kept["channel"]),
        category=kept.get("category", "general"),
        subject=kept.get("subject", ""),
        body=kept["body"],
        variables=list(kept.get("variables", [])),
        whatsapp_content_sid=kept.get("whatsapp_content_sid"),
        whatsapp_content_variables=tuple(kept.get("whatsapp_content_variables") or ()),
    )
