"""A local server that answers as Twilio and SendGrid do (so the real SDKs can be pointed at it, including
WhatsApp's 24-hour window and Content templates), SendGrid's webhook signing key, and the provider
credentials that point the app at them: for the fixtures of every test directory that sends messages
(`fake_providers`, `sendgrid_keys`, `providers_configured`)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    at: float = field(default_factory=time.monotonic)  # when it arrived


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
    # Called (in the server's thread) with the path of a message request once the fake has decided its fate
    # (created the message, recorded above, or begun to hang) and before it answers: a test's way to act at
    # that moment (stop the sender, as a crash would) knowing what the provider holds.
    on_decided: Callable[[str], None] | None = None

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
            if self.path.endswith("/Messages.json"):
                self._twilio(body)
            elif self.path == "/v3/mail/send":
                self._sendgrid()
            else:
                self._answer(404, {"message": "not found"})

        def _twilio(self, body: bytes) -> None:
            from urllib.parse import parse_qsl

            if fake.twilio_hangs:
                hang = fake.twilio_hangs.pop(0)
                self._decided()
                time.sleep(hang)
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
            self._decided()
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
            self._decided()
            self.send_response(202)
            self.send_header("X-Message-Id", message_id)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _decided(self) -> None:
            if fake.on_decided is not None:
                fake.on_decided(self.path)

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve_fake_providers() -> Iterator[FakeProviders]:
    """A fresh fake Twilio + SendGrid server on 127.0.0.1, shut down on exit."""
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


def make_sendgrid_keys() -> SendGridKeys:
    """A signing key for SendGrid's event webhook."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SendGridKeys(private, base64.b64encode(der).decode())


def configure_providers(
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
        # Unpaced: the suite's tests share these senders (and their turns in the shared database); the
        # pacing tests pace senders of their own.
        "sms_messages_per_second": 0,
        "whatsapp_messages_per_second": 0,
        "email_messages_per_second": 0,
    }
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value)
    return fake_providers
