"""A client of SMART Backend Services as the tests play it: its keys, its signed assertions, its token
request, and the server publishing its JWK Set at a `jwks_uri`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from domain.integrations.keys import ASSERTION_TYPE

TOKEN_URL = "http://testserver/oauth/token"


@dataclass(frozen=True)
class KeyPair:
    """A private key held by the test (the EHR) and its public JWK."""

    alg: str
    kid: str
    private: Any
    public_jwk: dict[str, Any]


def key_pair(alg: str = "RS384", kid: str | None = None) -> KeyPair:
    """A fresh key for `alg` (RS384: RSA 2048; ES384: EC P-384)."""
    kid = kid or uuid.uuid4().hex
    if alg == "ES384":
        private: Any = ec.generate_private_key(ec.SECP384R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return KeyPair(alg, kid, private, {**jwk, "kid": kid, "use": "sig", "alg": alg})


def assertion(
    client_id: str,
    key: KeyPair,
    *,
    aud: str = TOKEN_URL,
    lifetime: timedelta = timedelta(minutes=4),
    jti: str | None = None,
    kid: str | None = None,
) -> str:
    """A client assertion as an EHR signs it."""
    now = datetime.now(UTC)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now + lifetime,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": kid or key.kid})


def token_form(signed: str, scope: str | None = None) -> dict[str, str]:
    """The token request of SMART Backend Services."""
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if scope is not None:
        form["scope"] = scope
    return form


class JwksServer:
    """A client's jwks_uri: serves `jwks` (after `delay` seconds, calling `on_request` first), or redirects
    to `redirect_to`; counts the fetches and keeps the Host header of each."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0
        self.hosts: list[str | None] = []
        self.delay = 0.0
        self.redirect_to: str | None = None
        self.on_request: Callable[[], None] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                outer.hosts.append(self.headers.get("Host"))
                if outer.on_request is not None:
                    outer.on_request()
                time.sleep(outer.delay)
                if outer.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", outer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
