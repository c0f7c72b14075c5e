"""The delivery activity counts what it sends, by channel and provider, in the worker's metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.communications.conftest import API, delivery_result


def sent(channel: str, provider: str) -> float:
    """`prm_messages_sent_total` for one channel and provider (0 before the first)."""
    return (
        REGISTRY.get_sample_value("prm_messages_sent_total", {"channel": channel, "provider": provider})
        or 0.0
    )


async def test_a_message_sent_by_the_delivery_activity_is_counted_by_channel_and_provider(
    client, auth, temporal_env, temporal_worker, providers_configured, make_patient
) -> None:
    patient = await make_patient()
    before = sent("sms", "twilio")
    body = {"patient_id": str(patient.id), "channel": "sms", "message": "See you soon", "is_urgent": True}
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    assert resp.status_code == 201, resp.text

    assert (await delivery_result(temporal_env, resp.json()["id"])).status == "sent"
    assert sent("sms", "twilio") == before + 1
