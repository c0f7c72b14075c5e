"""`prm integration ...`: the clients (EHRs) that call the FHIR and HL7 endpoints, their secrets, and how
their HL7 v2 feeds are read (`prm integration configure`: the zone of their local times, their code maps,
whether message types this service does not use are ignored).

Every command that changes a client is recorded in the tenant's audit trail as `cli:<user>`. A secret is
printed once, when it is made (stdout, JSON); only its hash is stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cli.common import (
    EXIT_BAD_INPUT,
    CliError,
    cli_actor,
    configure_cli_logging,
    database_url_or_fail,
    fail,
    load_settings,
    run_db,
    system_session,
)
from core.client_credentials import Scope
from core.errors import DomainError

integration_app = typer.Typer(
    help="Integration clients (EHRs) for the FHIR and HL7 endpoints: create, configure, rotate, revoke, list",
    no_args_is_help=True,
)
T = TypeVar("T")

TenantOption = Annotated[uuid.UUID, typer.Option("--tenant-id", help="The tenant the client belongs to.")]
ClientOption = Annotated[str, typer.Option("--client-id", help="The client's id (prm_client_...).")]

# -- SMART Backend Services (private_key_jwt): the client's public keys --
JwksOption = Annotated[
    Path | None,
    typer.Option(
        "--jwks",
        help="A file holding the client's public keys as a JWK Set (RS384 or ES384); the client then signs "
        "assertions instead of using a secret.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
JwksUriOption = Annotated[
    str | None,
    typer.Option("--jwks-uri", help="Instead of --jwks: the https URL the client serves its JWK Set at."),
]


def _keys(jwks: Path | None, jwks_uri: str | None) -> Any:
    """The key source the options name (the JWK Set file read and parsed), checked by the service."""
    from domain.integrations.service import ClientKeys

    document = None
    if jwks is not None:
        try:
            document = json.loads(jwks.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            fail(f"--jwks: {jwks} is not a JSON file ({exc.__class__.__name__})", EXIT_BAD_INPUT)
    return ClientKeys(jwks=document, jwks_uri=jwks_uri)


def _run(job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = load_settings()
    configure_cli_logging(settings)
    url = database_url_or_fail(settings)

    async def run() -> T:
        try:
            async with system_session(settings, url) as session:
                return await job(session)
        except DomainError as exc:
            raise CliError(exc.detail) from exc

    return run_db(url, run)


def _jwks_uri_guard() -> Any:
    """The guard a `--jwks-uri` passes, as the API's (PRM_SMART_JWKS_ALLOW_PRIVATE_ADDRESSES)."""
    from domain.integrations.keys import JwksUriGuard

    return JwksUriGuard(allow_private=load_settings().smart_jwks_allow_private_addresses)


def _issued(issued: Any) -> str:
    return json.dumps(
        {
            "tenant_id": str(issued.client.tenant_id),
            "client_id": issued.client.client_id,
            "client_secret": issued.secret,
            "secret_id": str(issued.secret_id) if issued.secret_id else None,
            "scope": " ".join(issued.client.scopes),
        }
    )


# ---- HL7 v2 feed settings ----------------------------------------------------------------------------------

TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="IANA zone the feed's HL7 times without an offset are read in, e.g. America/New_York "
        "[default: the tenant's].",
    ),
]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="KIND:CODE=VALUE, a local code mapped onto ours (repeat for several); KIND is language (to BCP "
        "47), sex (male, female, other, unknown) or appointment_type. E.g. --map language:SPANISH=es",
    ),
]


def _code(entry: str, option: str, with_value: bool) -> tuple[str, str, str]:
    kind, _, rest = entry.partition(":")
    code, _, value = rest.partition("=")
    if not kind or not code.strip() or (with_value and not value.strip()):
        shape = "KIND:CODE=VALUE" if with_value else "KIND:CODE"
        fail(f"{option} takes {shape}, e.g. language:SPANISH{'=es' if with_value else ''}", EXIT_BAD_INPUT)
    return kind.strip(), code, value


def _feed(
    current: dict[str, dict[str, str]],
    *,
    maps: list[str],
    unmaps: list[str],
    **fields: Any,
) -> Any:
    """The FeedSettings these options make (the current code maps with `maps` added and `unmaps` removed)."""
    from domain.integrations.schemas import CodeKind, FeedSettings, local_code

    changed = {kind: dict(codes) for kind, codes in current.items()}
    touched: set[str] = set()
    for entry in maps:
        kind, code, value = _code(entry, "--map", with_value=True)
        changed.setdefault(kind, {})[local_code(code)] = value
        touched.add(kind)
    for entry in unmaps:
        kind, code, _ = _code(entry, "--unmap", with_value=False)
        changed.get(kind, {}).pop(local_code(code), None)
        touched.add(kind)
    unknown = touched - set(CodeKind.__members__.values())
    if unknown:
        fail(
            f"unknown code map kind(s): {', '.join(sorted(unknown))} (use language, sex, appointment_type)",
            EXIT_BAD_INPUT,
        )
    try:
        given = {k: v for k, v in fields.items() if v is not None}
        if touched:
            given["code_maps"] = {kind: changed.get(kind, {}) for kind in touched}
        return FeedSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid feed settings: {problems}", EXIT_BAD_INPUT)


def _feed_json(client: Any) -> dict[str, Any]:
    return {
        "timezone": client.timezone,
        "ignore_unsupported_messages": client.ignore_unsupported_messages,
        "code_maps": client.code_maps or {},
    }


@integration_app.command("configure")
def configure(
    tenant_id: TenantOption,
    client_id: ClientOption,
    timezone: TimezoneOption = None,
    tenant_timezone: Annotated[
        bool, typer.Option("--tenant-timezone", help="Read the feed's times in the tenant's zone again.")
    ] = False,
    ignore_unsupported: Annotated[
        bool | None,
        typer.Option(
            "--ignore-unsupported-messages/--refuse-unsupported-messages",
            help="Answer message types this service does not use (A02, A28, ...) AA and ignore them, or AR.",
        ),
    ] = None,
    map_: MapOption = None,
    unmap: Annotated[
        list[str] | None,
        typer.Option(
            "--unmap", help="KIND:CODE, a local code to remove from the feed's code map (repeatable)."
        ),
    ] = None,
) -> None:
    """Change how a client's HL7 v2 feed is read; print its feed settings as JSON."""
    from domain.integrations.service import configure_feed, list_clients

    if timezone and tenant_timezone:
        fail("--timezone and --tenant-timezone exclude each other", EXIT_BAD_INPUT)

    async def job(session: AsyncSession) -> Any:
        found = [s.client for s in await list_clients(session, tenant_id) if s.client.client_id == client_id]
        if not found:
            raise CliError("Integration client not found.")
        feed = _feed(
            found[0].code_maps or {},
            maps=map_ or [],
            unmaps=unmap or [],
            timezone=timezone,
            ignore_unsupported_messages=ignore_unsupported,
        )
        if tenant_timezone:
            feed.timezone = None  # set explicitly: back to the tenant's zone
        return await configure_feed(
            session, tenant_id=tenant_id, client_id=client_id, feed=feed, actor=cli_actor()
        )

    client = _run(job)
    typer.echo(json.dumps({"client_id": client.client_id, "hl7_feed": _feed_json(client)}))


# ---- end of HL7 v2 feed settings ---------------------------------------------------------------------------


@integration_app.command("create")
def create(
    tenant_id: TenantOption,
    name: Annotated[str, typer.Option("--name", help="What the client is, e.g. 'Epic production'.")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option("--scope", help="What it may call (repeat for several) [default: fhir]."),
    ] = None,
    jwks: JwksOption = None,
    jwks_uri: JwksUriOption = None,
    timezone: TimezoneOption = None,
    ignore_unsupported: Annotated[
        bool,
        typer.Option(
            "--ignore-unsupported-messages",
            help="Answer HL7 message types this service does not use AA and ignore them [default: AR].",
        ),
    ] = False,
    map_: MapOption = None,
) -> None:
    """Create a client and its first secret; print them as JSON (the secret is shown only now). With
    --jwks or --jwks-uri (SMART Backend Services) the client gets no secret: it signs assertions."""
    if not name.strip():
        fail("--name must not be empty", EXIT_BAD_INPUT)
    from domain.integrations.service import create_client

    scopes = set(scope or [Scope.FHIR])
    keys = _keys(jwks, jwks_uri)
    feed = _feed(
        {}, maps=map_ or [], unmaps=[], timezone=timezone, ignore_unsupported_messages=ignore_unsupported
    )
    issued = _run(
        lambda s: create_client(
            s,
            tenant_id=tenant_id,
            name=name,
            scopes=scopes,
            actor=cli_actor(),
            keys=keys,
            feed=feed,
            guard=_jwks_uri_guard(),
        )
    )
    typer.echo(_issued(issued))
    if issued.secret is not None:
        typer.echo("Store the secret now: it cannot be shown again.", err=True)


@integration_app.command("set-keys")
def set_keys(
    tenant_id: TenantOption, client_id: ClientOption, jwks: JwksOption = None, jwks_uri: JwksUriOption = None
) -> None:
    """Replace a client's public keys (SMART Backend Services) with --jwks FILE or --jwks-uri URL; with
    neither, remove them."""
    from domain.integrations.service import set_keys as set_client_keys

    keys = _keys(jwks, jwks_uri)
    guard = _jwks_uri_guard()
    _run(
        lambda s: set_client_keys(
            s, tenant_id=tenant_id, client_id=client_id, keys=keys, actor=cli_actor(), guard=guard
        )
    )
    typer.echo("Replaced the client's keys." if keys.given else "Removed the client's keys.", err=True)


@integration_app.command("rotate")
def rotate(tenant_id: TenantOption, client_id: ClientOption) -> None:
    """Add a new secret to a client and print it as JSON. The old secrets keep working until revoked:
    move the EHR to the new secret, then `prm integration revoke --secret-id OLD`."""
    from domain.integrations.service import rotate_secret

    issued = _run(lambda s: rotate_secret(s, tenant_id=tenant_id, client_id=client_id, actor=cli_actor()))
    typer.echo(_issued(issued))


@integration_app.command("revoke")
def revoke(
    tenant_id: TenantOption,
    client_id: ClientOption,
    secret_id: Annotated[
        uuid.UUID | None,
        typer.Option("--secret-id", help="Revoke only this secret [default: the whole client]."),
    ] = None,
) -> None:
    """Revoke one secret of a client, or the client itself; tokens already issued stop working at once."""
    from domain.integrations.service import revoke as revoke_client

    _run(
        lambda s: revoke_client(
            s, tenant_id=tenant_id, client_id=client_id, secret_id=secret_id, actor=cli_actor()
        )
    )
    typer.echo("Revoked the secret." if secret_id else "Revoked the client.", err=True)


@integration_app.command("list")
def list_(tenant_id: TenantOption) -> None:
    """The tenant's clients, one JSON object a line, with their secrets' ids and last characters."""
    from domain.integrations.service import list_clients

    summaries = _run(lambda s: list_clients(s, tenant_id))
    for summary in summaries:
        client = summary.client
        typer.echo(
            json.dumps(
                {
                    "client_id": client.client_id,
                    "name": client.name,
                    "scope": " ".join(client.scopes),
                    "created_at": client.created_at.isoformat(),
                    "revoked_at": client.revoked_at.isoformat() if client.revoked_at else None,
                    "jwks": client.jwks,
                    "jwks_uri": client.jwks_uri,
                    "hl7_feed": _feed_json(client),
                    "secrets": [
                        {
                            "secret_id": str(s.id),
                            "ends_with": s.hint,
                            "created_at": s.created_at.isoformat(),
                            "revoked_at": s.revoked_at.isoformat() if s.revoked_at else None,
                        }
                        for s in summary.secrets
                    ],
                }
            )
        )
