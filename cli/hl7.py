"""`prm hl7 ...`: HL7 v2 transports in front of the API (`prm hl7 mllp`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.common import EXIT_BAD_INPUT, configure_cli_logging, fail, load_settings

hl7_app = typer.Typer(
    help="HL7 v2 transports in front of POST /hl7/v2 (an MLLP listener).", no_args_is_help=True
)
DEFAULT_MLLP_PORT = 2575  # the port IANA registered for HL7 over MLLP


@hl7_app.command("mllp")
def mllp(
    client_id: Annotated[
        str,
        typer.Option(
            "--client-id", envvar="PRM_HL7_CLIENT_ID", help="An integration client with the hl7 scope."
        ),
    ],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret",
            envvar="PRM_HL7_CLIENT_SECRET",
            help="Its secret (prefer the environment variable: a command line is visible to other users).",
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = DEFAULT_MLLP_PORT,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", help="The PRM API's base URL (default: http://127.0.0.1:PRM_API_PORT)."),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option(help="The character set of messages whose MSH-18 names none (MSH-18, when set, wins)."),
    ] = "utf-8",
) -> None:
    """Listen for HL7 v2 over MLLP and forward each message to POST /hl7/v2, answering the API's ACK."""
    import httpx

    from cli.hl7_mllp import TokenRefused, run_listener

    settings = load_settings()
    configure_cli_logging(settings, quiet=False)
    if not 0 < port < 65536:
        fail("--port must be between 1 and 65535", EXIT_BAD_INPUT)
    try:
        "".encode(encoding)
    except LookupError:
        fail(f"unknown encoding: {encoding}", EXIT_BAD_INPUT)
    url = (api_url or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
    try:
        asyncio.run(run_listener(url, client_id, client_secret, host, port, encoding))
    except TokenRefused:
        fail("the API refused the client id and secret (is the client active, with the hl7 scope?)")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {url} ({type(exc).__name__}): is it running?")
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} or reach {url}: {exc.strerror or type(exc).__name__}")
