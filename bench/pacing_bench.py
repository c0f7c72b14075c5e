"""Sender pacing: a one-off SMS campaign at 10 messages a second, and a reminder due while it runs.

    .venv/bin/python -m bench.pacing_bench [--patients 700] [--rate 10]

One Temporal dev server, one worker process (`bench.worker_process`) with the real Twilio SDK pointed at a
local HTTP server that answers as Twilio's Messages.json does and notes when each request arrived, and the
API in the benchmark's process. N patients are seeded with phone numbers in one tenant (quiet hours off);
`POST /campaigns` sends each of them one SMS from a long code paced at `--rate` messages a second
(`PRM_SMS_MESSAGES_PER_SECOND`). Twenty seconds into the campaign a coordinator's message is scheduled
(`POST /communications` with `scheduled_for` 10 s ahead): an interactive message, due while the campaign
still has most of its members to go. The figures replace the `pacing` section of BENCHMARKS.md.

Goals (the issue's): the rate Twilio sees over the campaign's first 60 s within 5 % of `--rate`; the
reminder handed to Twilio within 2 s of the moment it was due.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx

from api.app import create_app
from bench.common import NO_QUIET_HOURS, insert_tenant, scratch_database, temporal_dev_server, write_section
from bench.journeys_bench import bench_settings, seed_patients, start_worker_process
from core.auth import Role, issue_dev_token

SENDER = "+14155550000"  # a US long code
TWILIO_SID, TWILIO_TOKEN = "AC" + "0" * 32, "bench-twilio-token"
WINDOW_SECONDS = 60.0
REMINDER_AFTER, REMINDER_LEAD = 20.0, 10.0  # seconds into the campaign; seconds ahead it is scheduled
REMINDER_TO = "+14155559999"
GOAL_TOLERANCE, GOAL_REMINDER_SECONDS = 0.05, 2.0


class FakeTwilio:
    """Answers `POST .../Messages.json` as Twilio does (201, a message sid) and notes when each arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []  # (wall-clock seconds, To)
        self.lock = threading.Lock()
        self.first = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = dict(parse_qsl(body.decode()))
                with fake.lock:
                    fake.arrivals.append((time.time(), form.get("To", "")))
                fake.first.set()
                sid = "SM" + uuid.uuid4().hex
                answer = json.dumps({"sid": sid, "status": "queued", "to": form.get("To")}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.arrivals)


def twilio_env(url: str, rate: float) -> dict[str, str]:
    """The worker's provider settings: Twilio (the fake), SMS from a long code at `rate` a second."""
    return {
        "PRM_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "PRM_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PRM_TWILIO_SMS_FROM": SENDER,
        "PRM_TWILIO_BASE_URL": url,
        "PRM_SMS_MESSAGES_PER_SECOND": str(rate),
    }


async def campaign_and_reminder(
    app: Any, url: str, tenant_id: uuid.UUID, fake: FakeTwilio, patients: int, give_up_after: float
) -> dict[str, Any]:
    """Launch the SMS campaign, schedule the reminder during it, and wait until every member's message
    and the reminder reached Twilio."""
    token = issue_dev_token(app.state.settings, tenant_id=tenant_id, roles=[Role.COORDINATOR])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:
        cohort = await api.post("/api/v1/prm/cohorts", json={"name": "All", "criteria": {}}, headers=headers)
        cohort.raise_for_status()
        body = {
            "name": "Paced recall",
            "cohort_id": cohort.json()["id"],
            "message": {"channel": "sms", "message": "Your annual check-up is due: reply to book."},
        }
        launched = await api.post("/api/v1/prm/campaigns", json=body, headers=headers)
        launched.raise_for_status()
        started = time.time()
        print(f"  campaign launched ({patients} members)", flush=True)
        await asyncio.to_thread(fake.first.wait, give_up_after)
        first = fake.sent()[0][0]
        await asyncio.sleep(max(0.0, first + REMINDER_AFTER - time.time()))
        patient = await api.post(
            "/api/v1/prm/patients",
            json={"first_name": "Rem", "last_name": "Inder", "phone_primary": REMINDER_TO},
            headers=headers,
        )
        patient.raise_for_status()
        due = datetime.now(UTC) + timedelta(seconds=REMINDER_LEAD)
        reminder = await api.post(
            "/api/v1/prm/communications",
            json={
                "patient_id": patient.json()["id"],
                "channel": "sms",
                "message": "Reminder: your appointment is tomorrow at 9:00 AM.",
                "scheduled_for": due.isoformat(),
            },
            headers=headers,
        )
        reminder.raise_for_status()
        print(f"  reminder scheduled for {due.time().isoformat(timespec='seconds')} UTC", flush=True)
    while True:
        sent = fake.sent()
        campaign = [at for at, to in sent if to != REMINDER_TO]
        reminded = [at for at, to in sent if to == REMINDER_TO]
        if len(campaign) >= patients and reminded:
            break
        if time.time() - started > give_up_after:
            raise TimeoutError(f"{len(campaign)} of {patients} sent, reminder {bool(reminded)}")
        await asyncio.sleep(0.25)
    in_window = [at for at in campaign if at < first + WINDOW_SECONDS]
    return {
        "sent": len(campaign),
        "window_rate": len(in_window) / WINDOW_SECONDS,
        "overall_rate": (len(campaign) - 1) / (campaign[-1] - campaign[0]),
        "reminder_late": reminded[0] - due.timestamp(),
        "campaign_seconds": campaign[-1] - campaign[0],
    }


async def run(patients: int, rate: float, give_up_after: float) -> dict[str, Any]:
    """One paced campaign on one server and one worker process; returns the figures."""
    fake = FakeTwilio()
    env = await temporal_dev_server()
    async with env:
        with scratch_database() as url:
            tenant_id = insert_tenant(url, settings=NO_QUIET_HOURS)
            seed_patients(url, tenant_id, patients)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            app = create_app(bench_settings(url, queue), database_url=url)
            address = env.client.service_client.config.target_host
            worker = await asyncio.to_thread(
                start_worker_process, url, address, queue, twilio_env(fake.url, rate)
            )
            try:
                async with app.router.lifespan_context(app):
                    app.state.temporal_client = env.client
                    return await campaign_and_reminder(app, url, tenant_id, fake, patients, give_up_after)
            finally:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 30)
                fake.server.shutdown()


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=700, help="the campaign's members")
    parser.add_argument("--rate", type=float, default=10.0, help="the sender's messages per second")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before the run is given up")
    args = parser.parse_args()
    if args.patients < args.rate * (WINDOW_SECONDS + 5):
        parser.error(f"--patients must hold more than {WINDOW_SECONDS:.0f} s of the rate")
    f = asyncio.run(run(args.patients, args.rate, args.timeout))
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()})
    off = abs(f["window_rate"] / args.rate - 1)
    body = "\n".join(
        [
            "## Sender pacing",
            "",
            f"`python -m bench.pacing_bench --patients {args.patients} --rate {args.rate:g}` on "
            f"{platform.machine()}, Python {platform.python_version()}: one Temporal dev server, one worker "
            "process (`bench.worker_process`) whose real Twilio SDK talks to a local server answering as "
            "Twilio does, the API in the benchmark's process. A one-off SMS campaign to "
            f"{args.patients} patients from a long code paced at {args.rate:g} messages a second; "
            f"{REMINDER_AFTER:.0f} s into it a coordinator schedules a message due {REMINDER_LEAD:.0f} s "
            "later (an interactive message). Times are when the local Twilio received each request.",
            "",
            "| measure | figure | goal |",
            "| --- | --- | --- |",
            f"| messages a second over the campaign's first {WINDOW_SECONDS:.0f} s | {f['window_rate']:.2f} "
            f"({off:.1%} off) | within {GOAL_TOLERANCE:.0%} of {args.rate:g}: "
            f"{'met' if off <= GOAL_TOLERANCE else '**not met**'} |",
            f"| messages a second over the whole campaign ({f['sent']} in {f['campaign_seconds']:.1f} s) "
            f"| {f['overall_rate']:.2f} | |",
            f"| the reminder, after the moment it was due | {f['reminder_late']:.2f} s | at most "
            f"{GOAL_REMINDER_SECONDS:.0f} s: "
            f"{'met' if f['reminder_late'] <= GOAL_REMINDER_SECONDS else '**not met**'} |",
        ]
    )
    write_section("pacing", body)


if __name__ == "__main__":
    main()
