"""The built-in templates' text, one entry per template and language (English and Spanish for every one).

Every language of a template reads the same variables (a test holds it), so a journey action valid in one
language is valid in all. The Spanish addresses the patient as `usted`, as clinics do. `PHRASES` are the
few words the service itself puts into a message (`practitioner_name` without an appointment, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.enums import Channel


@dataclass(frozen=True)
class BuiltinText:
    """One built-in template: its id, kind, and (subject, body) by language tag."""

    id: str
    name: str
    channel: Channel
    category: str
    text: dict[str, tuple[str, str]]


BUILTIN_TEXTS: tuple[BuiltinText, ...] = (
    BuiltinText(
        "apt_reminder",
        "Appointment Reminder",
        Channel.WHATSAPP,
        "appointment",
        {
            "en": (
                "Appointment Reminder",
                "Hi {{ patient_first_name }}, this is a reminder of your appointment with "
                "{{ practitioner_name }} on {{ appointment_date }} at {{ appointment_time }} at "
                "{{ clinic_name }}. Reply C to confirm.",
            ),
            "es": (
                "Recordatorio de cita",
                "Hola, {{ patient_first_name }}: le recordamos su cita con {{ practitioner_name }} el "
                "{{ appointment_date }} a las {{ appointment_time }} en {{ clinic_name }}. "
                "Responda C para confirmarla.",
            ),
        },
    ),
    BuiltinText(
        "apt_confirmation",
        "Appointment Confirmation",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "Appointment Confirmed",
                "{{ clinic_name }}: your appointment with {{ practitioner_name }} is confirmed for "
                "{{ appointment_date }} at {{ appointment_time }}.",
            ),
            "es": (
                "Cita confirmada",
                "{{ clinic_name }}: su cita con {{ practitioner_name }} queda confirmada para el "
                "{{ appointment_date }} a las {{ appointment_time }}.",
            ),
        },
    ),
    BuiltinText(
        "pre_procedure_instructions",
        "Pre-Procedure Instructions",
        Channel.EMAIL,
        "instructions",
        {
            "en": (
                "Preparing for your {{ procedure_name }}",
                "Dear {{ patient_name }},\n\nYour {{ procedure_name }} is on {{ appointment_date }} at "
                "{{ appointment_time }}. Please do not eat or drink for {{ fasting_hours }} hours before "
                "it.\n\n{{ clinic_name }}",
            ),
            "es": (
                "Cómo prepararse para su {{ procedure_name }}",
                "Estimado/a {{ patient_name }}:\n\nLe esperamos para su {{ procedure_name }} el "
                "{{ appointment_date }} a las {{ appointment_time }}. Por favor, no coma ni beba nada "
                "durante las {{ fasting_hours }} horas anteriores.\n\n{{ clinic_name }}",
            ),
        },
    ),
    BuiltinText(
        "post_op_welcome",
        "Post-Surgery Welcome",
        Channel.WHATSAPP,
        "follow_up",
        {
            "en": (
                "Welcome home",
                "Hi {{ patient_first_name }}, welcome home from {{ clinic_name }}. We'll check in on your "
                "recovery over the next days. Reply here any time if something worries you.",
            ),
            "es": (
                "De vuelta en casa",
                "Hola, {{ patient_first_name }}: desde {{ clinic_name }} le damos la bienvenida a casa. En "
                "los próximos días le preguntaremos cómo va su recuperación. Si algo le preocupa, "
                "responda a este mensaje cuando quiera.",
            ),
        },
    ),
    BuiltinText(
        "recovery_check_in",
        "Recovery Check-in",
        Channel.WHATSAPP,
        "follow_up",
        {
            "en": (
                "How are you feeling?",
                "Hi {{ patient_first_name }}, how is your recovery going? Please reply with how you feel "
                "today (pain 0-10) so {{ practitioner_name }} can follow up.",
            ),
            "es": (
                "¿Cómo se encuentra?",
                "Hola, {{ patient_first_name }}: ¿cómo va su recuperación? Responda contándonos cómo se "
                "siente hoy (dolor del 0 al 10) para que {{ practitioner_name }} pueda hacerle el "
                "seguimiento.",
            ),
        },
    ),
    BuiltinText(
        "lab_results_ready",
        "Lab Results Ready",
        Channel.SMS,
        "results",
        {
            "en": (
                "Your results are ready",
                "{{ clinic_name }}: the results of your {{ test_name }} are ready. Log in to the portal or "
                "call us to discuss them with {{ practitioner_name }}.",
            ),
            "es": (
                "Sus resultados están listos",
                "{{ clinic_name }}: los resultados de su {{ test_name }} ya están disponibles. Consúltelos "
                "en el portal o llámenos para comentarlos con {{ practitioner_name }}.",
            ),
        },
    ),
    BuiltinText(
        "prescription_ready",
        "Prescription Ready",
        Channel.SMS,
        "pharmacy",
        {
            "en": (
                "Prescription ready for pickup",
                "Hi {{ patient_first_name }}, your prescription is ready for pickup at {{ pharmacy_name }}.",
            ),
            "es": (
                "Receta lista para recoger",
                "Hola, {{ patient_first_name }}: su receta ya está lista para recoger en "
                "{{ pharmacy_name }}.",
            ),
        },
    ),
    BuiltinText(
        "payment_reminder",
        "Payment Reminder",
        Channel.EMAIL,
        "billing",
        {
            "en": (
                "Payment reminder from {{ clinic_name }}",
                "Dear {{ patient_name }},\n\nA balance of {{ amount_due }} is due on {{ due_date }}. "
                "Reply to this email if you have any questions.\n\n{{ clinic_name }}",
            ),
            "es": (
                "Recordatorio de pago de {{ clinic_name }}",
                "Estimado/a {{ patient_name }}:\n\nTiene un saldo pendiente de {{ amount_due }} que vence "
                "el {{ due_date }}. Si tiene alguna pregunta, responda a este correo.\n\n{{ clinic_name }}",
            ),
        },
    ),
    BuiltinText(
        "general_message",
        "General Message",
        Channel.SMS,
        "general",
        {
            "en": ("Message from {{ clinic_name }}", "Hi {{ patient_first_name }}, {{ message }}"),
            "es": ("Mensaje de {{ clinic_name }}", "Hola, {{ patient_first_name }}: {{ message }}"),
        },
    ),
    BuiltinText(
        "feedback_request",
        "Feedback Request",
        Channel.EMAIL,
        "follow_up",
        {
            "en": (
                "How was your visit?",
                "Dear {{ patient_name }},\n\nThank you for visiting {{ clinic_name }}. We'd love to hear how "
                "your visit with {{ practitioner_name }} went: just reply to this email.",
            ),
            "es": (
                "¿Qué tal fue su visita?",
                "Estimado/a {{ patient_name }}:\n\nGracias por visitar {{ clinic_name }}. Nos encantaría "
                "saber qué tal fue su consulta con {{ practitioner_name }}: basta con que responda a este "
                "correo.",
            ),
        },
    ),
    # What scheduling sends on its own: the appointment's reminders, its cancellation, a chat booking.
    BuiltinText(
        "appointment_reminder",
        "Appointment Reminder (automatic)",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "Appointment reminder",
                "Reminder: your appointment with {{ practitioner_name }} is on {{ appointment_date }} at "
                "{{ appointment_time }}. Reply C to confirm.",
            ),
            "es": (
                "Recordatorio de cita",
                "Recordatorio: tiene cita con {{ practitioner_name }} el {{ appointment_date }} a las "
                "{{ appointment_time }}. Responda C para confirmarla.",
            ),
        },
    ),
    BuiltinText(
        "appointment_cancelled",
        "Appointment Cancelled",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "Appointment cancelled",
                "Your appointment with {{ practitioner_name }} on {{ appointment_date }} at "
                "{{ appointment_time }} has been cancelled. Reply to book a new time.",
            ),
            "es": (
                "Cita cancelada",
                "Su cita con {{ practitioner_name }} del {{ appointment_date }} a las {{ appointment_time }} "
                "ha sido cancelada. Responda a este mensaje para pedir una nueva hora.",
            ),
        },
    ),
    BuiltinText(
        "appointment_booked",
        "Appointment Booked",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "Appointment booked",
                "You're booked for {{ appointment_date }} at {{ appointment_time }}. We'll send a reminder "
                "before your visit.",
            ),
            "es": (
                "Cita reservada",
                "Su cita queda reservada para el {{ appointment_date }} a las {{ appointment_time }}. Le "
                "enviaremos un recordatorio antes de la visita.",
            ),
        },
    ),
    # The one reply to STOP / START (the keywords are Twilio's, in English, whatever the language).
    BuiltinText(
        "consent_opt_out",
        "Unsubscribed",
        Channel.SMS,
        "general",
        {
            "en": (
                "Unsubscribed",
                "You have been unsubscribed from {{ clinic_name }} messages on this channel. "
                "Reply START to resubscribe.",
            ),
            "es": (
                "Baja confirmada",
                "Ya no recibirá mensajes de {{ clinic_name }} por este canal. "
                "Responda START para volver a recibirlos.",
            ),
        },
    ),
    BuiltinText(
        "consent_opt_in",
        "Subscribed again",
        Channel.SMS,
        "general",
        {
            "en": (
                "Subscribed again",
                "You are subscribed again to {{ clinic_name }} messages on this channel. "
                "Reply STOP to unsubscribe.",
            ),
            "es": (
                "Alta confirmada",
                "Vuelve a recibir mensajes de {{ clinic_name }} por este canal. "
                "Responda STOP para dejar de recibirlos.",
            ),
        },
    ),
)


# The words the service fills in itself, by language (English is the fallback of every language).
PHRASES: dict[str, dict[str, str]] = {
    "care_team": {"en": "your care team", "es": "su equipo médico"},
    "clinic": {"en": "your clinic", "es": "su clínica"},
}
