"""A headless Debian chromium driven over the Chrome DevTools Protocol (a websocket, no browser download).

Only what the browser tests need: start chromium on a throwaway profile, open a page, evaluate JavaScript.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import websockets

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# No network but the loopback: every other host name fails to resolve (a CDN fetch fails as it would offline),
# and no proxy is asked either.
LOOPBACK_ONLY = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-proxy-server")
INSTALL_HINT = (
    "apt-get install --no-install-recommends chromium (`make test` does it when run as root or with sudo)"
)


def chromium_or_skip() -> str:
    """Debian's chromium; skip without it, except under CI, where a missing browser fails the test."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set but chromium is not installed: {INSTALL_HINT}")
    pytest.skip(f"chromium is not installed (this test runs in a real browser): {INSTALL_HINT}")


class Page:
    """One browser tab, over its DevTools websocket."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result (events arriving meanwhile are dropped)."""
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def goto(self, url: str, within: float = 15) -> None:
        """Open `url` and wait until its document has loaded."""
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", within)

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page (of what it resolves to, if awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float, interval: float = 0.02) -> Any:
        """Poll until `expression` is truthy; its value (TimeoutError after `within` seconds)."""
        deadline = time.monotonic() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still falsy after {within:.2f} s: {expression}")
            await asyncio.sleep(interval)


@asynccontextmanager
async def headless_chromium(executable: str, extra_flags: Sequence[str] = ()) -> AsyncIterator[Page]:
    """A headless chromium on a fresh profile with DevTools on a free local port; yields its first tab."""
    # Chromium's helper processes can outlive the browser for a moment and still write to the profile: the
    # whole process group is ended below, and a straggling file never fails the test's teardown.
    profile_dir = tempfile.TemporaryDirectory(prefix="prm-chromium-", ignore_cleanup_errors=True)
    with profile_dir as profile, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(  # noqa: ASYNC220, S603 - chromium from PATH; waited for below
            [
                executable,
                *FLAGS,
                *extra_flags,
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,  # a file, not a pipe: a chatty browser never blocks on a full pipe
            start_new_session=True,  # its own process group, helpers included
        )
        try:
            port = await _devtools_port(Path(profile) / "DevToolsActivePort", proc, log)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                targets = (await http.get("/json/list")).json()
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with websockets.connect(ws_url, max_size=None) as ws:
                page = Page(ws)
                await page.send("Runtime.enable")
                await page.send("Page.enable")
                yield page
        finally:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # already gone


async def _devtools_port(
    path: Path, proc: subprocess.Popen[bytes], log: IO[bytes], within: float = 30
) -> int:
    """The port chromium chose, from the file it writes into the profile once DevTools listens."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise RuntimeError(f"chromium exited with {proc.returncode}: {err[-2000:]}")
        if (port := _read_port(path)) is not None:
            return port
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def _read_port(path: Path) -> int | None:
    """The first line of DevToolsActivePort, once chromium has written it."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    return int(lines[0]) if lines else None
