"""The built-in templates' text, one entry per template and language (English and Spanish for every one).

Every language of a template reads the same variables (a test holds it), so a journey action valid in one
language is valid in all. The Spanish addresses the patient as `usted`, as clinics do. `PHRASES` are the
few words the service itself puts into a message (`practitioner_name` without an appointment, ...), and
`reply_words` the words it reads in patients' answers.

To add a language: give every `BuiltinText` below a variant under its tag (same variables), every
`PHRASES` entry a word, and `reply_words` its answers and keywords; dates come from Babel's CLDR data.
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
    # The booking chat's turns (`scheduling.booking`): `options` is the offered times, each a `time` and a
    # `practitioner` already written in the message's language.
    BuiltinText(
        "booking_options",
        "Booking: open times",
        Channel.WHATSAPP,
        "appointment",
        {
            "en": (
                "Open times",
                "Here are the next available times:\n"
                "{% for o in options %}{{ loop.index }}. {{ o.time }} with {{ o.practitioner }}\n"
                "{% endfor %}Reply with the number of the time you want.",
            ),
            "es": (
                "Horas disponibles",
                "Estas son las próximas horas disponibles:\n"
                "{% for o in options %}{{ loop.index }}. {{ o.time }} con {{ o.practitioner }}\n"
                "{% endfor %}Responda con el número de la hora que prefiera.",
            ),
        },
    ),
    BuiltinText(
        "booking_slot_taken",
        "Booking: time just taken",
        Channel.WHATSAPP,
        "appointment",
        {
            "en": (
                "Time taken",
                "Sorry, that time was just taken. Other times:\n"
                "{% for o in options %}{{ loop.index }}. {{ o.time }} with {{ o.practitioner }}\n"
                "{% endfor %}Reply with the number of the time you want.",
            ),
            "es": (
                "Hora ocupada",
                "Lo sentimos, esa hora se acaba de ocupar. Otras horas:\n"
                "{% for o in options %}{{ loop.index }}. {{ o.time }} con {{ o.practitioner }}\n"
                "{% endfor %}Responda con el número de la hora que prefiera.",
            ),
        },
    ),
    BuiltinText(
        "booking_no_slots",
        "Booking: no open times",
        Channel.WHATSAPP,
        "appointment",
        {
            "en": (
                "No open times",
                "Sorry, there are no open times matching your request right now. Reply to try other dates.",
            ),
            "es": (
                "Sin horas disponibles",
                "Lo sentimos, ahora mismo no hay horas disponibles que coincidan con su petición. Responda "
                "a este mensaje para probar otras fechas.",
            ),
        },
    ),
    BuiltinText(
        "booking_not_understood",
        "Booking: reply not understood",
        Channel.WHATSAPP,
        "appointment",
        {
            "en": (
                "Not understood",
                "Sorry, I didn't catch that. Reply with the number of the time you want, e.g. 1.",
            ),
            "es": (
                "No le hemos entendido",
                "Lo sentimos, no le hemos entendido. Responda con el número de la hora que prefiera, "
                "por ejemplo 1.",
            ),
        },
    ),
    # The waitlist's offers of a freed time (`scheduling.backfill`, `scheduling.waitlist`): `time` is the
    # freed time and `practitioner` its practitioner ("" when unknown), written in the message's language.
    BuiltinText(
        "waitlist_offer",
        "Waitlist: a time is free",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "An earlier appointment is free",
                "Good news: an earlier appointment is free on {{ time }}"
                "{% if practitioner %} with {{ practitioner }}{% endif %}. Reply YES to book it or NO to "
                "pass. We'll keep it for you for {{ hold_minutes }} minutes.",
            ),
            "es": (
                "Hay una cita antes",
                "Buenas noticias: ha quedado libre una cita antes, el {{ time }}"
                "{% if practitioner %} con {{ practitioner }}{% endif %}. Responda SÍ para reservarla o NO "
                "para dejarla pasar. Se la guardamos durante {{ hold_minutes }} minutos.",
            ),
        },
    ),
    BuiltinText(
        "waitlist_taken",
        "Waitlist: the time was taken",
        Channel.SMS,
        "appointment",
        {
            "en": (
                "The time was taken",
                "Sorry, the {{ time }} appointment has just been taken. You're still on the waitlist.",
            ),
            "es": (
                "La cita ya está ocupada",
                "Lo sentimos, la cita del {{ time }} se acaba de ocupar. Sigue en la lista de espera.",
            ),
        },
    ),
    BuiltinText(
        "waitlist_not_understood",
        "Waitlist: reply not understood",
        Channel.SMS,
        "appointment",
        {
            "en": ("Not understood", "Sorry, I didn't catch that. Reply YES to book it or NO to pass."),
            "es": (
                "No le hemos entendido",
                "Lo sentimos, no le hemos entendido. Responda SÍ para reservarla o NO para dejarla pasar.",
            ),
        },
    ),
    BuiltinText(
        "waitlist_expired",
        "Waitlist: the offer expired",
        Channel.SMS,
        "appointment",
        {
            "en": ("Offer expired", "Sorry, this offer has expired. You're still on the waitlist."),
            "es": (
                "Oferta caducada",
                "Lo sentimos, esta oferta ha caducado. Sigue en la lista de espera.",
            ),
        },
    ),
    # The one reply to STOP / START (or a keyword of another language: `reply_words`).
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
    "the_clinic": {"en": "the clinic", "es": "la clínica"},
    "email_subject": {"en": "Message from your clinic", "es": "Mensaje de su clínica"},
    # A practitioner's title before their last name (`Dra.` for a woman in Spanish).
    "doctor": {"en": "Dr.", "es": "Dr."},
    "doctor_female": {"en": "Dr.", "es": "Dra."},
}
