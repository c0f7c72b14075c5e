"""The real `twilio` and `sendgrid` SDKs, pointed at a local server that answers as their APIs do."""

from __future__ import annotations

import asyncio
import threading

import pytest

from domain.communications import provider_contract
from domain.communications.providers import OutgoingMessage, ProviderError, provider_for
from domain.enums import Channel, CommunicationStatus
from tests.communications.provider_support import PUBLIC_BASE, TWILIO_SID
from tests.polling import eventually


def _message(channel: Channel, recipient: str, **extra) -> OutgoingMessage:
    return OutgoingMessage(
        channel, recipient, "Your results are ready", extra.pop("subject", None), "key-1", **extra
    )


async def test_sms_goes_through_twilio_with_from_to_body_and_status_callback(
    providers_configured, settings
) -> None:
    result = await provider_for(Channel.SMS, settings).send(_message(Channel.SMS, "+14155550123"))
    (request,) = providers_configured.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert providers_configured.twilio_forms() == [
        {
            "To": "+14155550123",
            "From": "+14155550000",
            "Body": "Your results are ready",
            "StatusCallback": f"{PUBLIC_BASE}/api/v1/prm/webhooks/twilio/status",
        }
    ]
    assert request.headers["Authorization"].startswith("Basic ")
    assert (result.provider, result.status.value) == ("twilio", "sent")
    assert result.provider_message_id and result.provider_message_id.startswith("SM")


async def test_whatsapp_numbers_carry_the_whatsapp_prefix(providers_configured, settings) -> None:
    await provider_for(Channel.WHATSAPP, settings).send(_message(Channel.WHATSAPP, "+14155550123"))
    (form,) = providers_configured.twilio_forms()
    assert (form["To"], form["From"]) == ("whatsapp:+14155550123", "whatsapp:+14155550001")


async def test_email_goes_through_sendgrid_with_custom_args(providers_configured, settings) -> None:
    result = await provider_for(Channel.EMAIL, settings).send(
        _message(Channel.EMAIL, "maria@example.test", subject="Results", communication_id="c-1")
    )
    (mail,) = providers_configured.sendgrid_mails()
    assert mail["personalizations"] == [{"to": [{"email": "maria@example.test"}]}]
    assert mail["from"] == {"email": "clinic@example.test", "name": "Test Clinic"}
    assert mail["subject"] == "Results"
    assert mail["content"] == [{"type": "text/plain", "value": "Your results are ready"}]
    assert mail["custom_args"] == {"communication_id": "c-1"}
    (request,) = providers_configured.requests
    assert request.headers["Authorization"] == "Bearer SG.test-key"
    assert (result.provider, result.status.value) == ("sendgrid", "sent")
    assert result.provider_message_id


async def test_an_invalid_number_is_a_permanent_error(providers_configured, settings) -> None:
    providers_configured.twilio_answers.append(
        (400, {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400})
    )
    with pytest.raises(ProviderError) as caught:
        await provider_for(Channel.SMS, settings).send(_message(Channel.SMS, "+14155550123"))
    assert (caught.value.retryable, caught.value.code) == (False, "21211")
    assert "not valid" in str(caught.value)


async def test_an_unsubscribed_recipient_is_a_permanent_error(providers_configured, settings) -> None:
    providers_configured.twilio_answers.append(
        (400, {"code": 21610, "message": "unsubscribed", "status": 400})
    )
    with pytest.raises(ProviderError) as caught:
        await provider_for(Channel.SMS, settings).send(_message(Channel.SMS, "+14155550123"))
    assert (caught.value.retryable, caught.value.code) == (False, "21610")


async def test_a_twilio_server_error_or_rate_limit_is_retryable(providers_configured, settings) -> None:
    providers_configured.twilio_answers += [
        (500, {"code": 20500, "message": "Internal error", "status": 500}),
        (429, {"code": 20429, "message": "Too many requests", "status": 429}),
    ]
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await provider_for(Channel.SMS, settings).send(_message(Channel.SMS, "+14155550123"))
        assert caught.value.retryable


async def test_sendgrid_errors_are_classified(providers_configured, settings) -> None:
    providers_configured.sendgrid_answers += [(503, {"errors": []}), (400, {"errors": [{"message": "bad"}]})]
    with pytest.raises(ProviderError) as transient:
        await provider_for(Channel.EMAIL, settings).send(_message(Channel.EMAIL, "m@example.test"))
    with pytest.raises(ProviderError) as permanent:
        await provider_for(Channel.EMAIL, settings).send(_message(Channel.EMAIL, "m@example.test"))
    assert (transient.value.retryable, permanent.value.retryable) == (True, False)


async def test_an_unreachable_provider_is_retryable(providers_configured, settings, monkeypatch) -> None:
    monkeypatch.setattr(settings, "twilio_base_url", "http://127.0.0.1:1")
    with pytest.raises(ProviderError) as caught:
        await provider_for(Channel.SMS, settings).send(_message(Channel.SMS, "+14155550123"))
    assert caught.value.retryable


async def test_every_send_in_flight_reaches_the_provider_while_its_answers_are_slow(
    providers_configured, settings, monkeypatch
) -> None:
    """The SDKs block a thread for each call until the provider answers. As many sends as the worker runs
    activities at once (40 here: more than the loop's default pool of min(32, cores + 4) threads on any
    machine) all reach Twilio while it holds its answers: none queues behind another's slow answer."""
    monkeypatch.setattr(settings, "worker_max_concurrent_activities", 40)
    monkeypatch.setattr(provider_contract, "_threads", None)  # sized afresh from these settings
    providers_configured.twilio_hold = hold = threading.Event()
    provider = provider_for(Channel.SMS, settings)
    sends = [asyncio.ensure_future(provider.send(_message(Channel.SMS, "+14155550123"))) for _ in range(40)]
    try:

        async def all_arrived() -> bool:
            return len(providers_configured.twilio_accepted) == 40

        await eventually(all_arrived, "40 sends at Twilio while it holds its answers", within=20)
    finally:
        hold.set()
        results = await asyncio.gather(*sends, return_exceptions=True)
        threads = provider_contract._threads
        if threads is not None:
            threads.shutdown(wait=False)
    assert [getattr(r, "status", r) for r in results] == [CommunicationStatus.SENT] * 40
