"""Temporal payloads encrypted at rest: an AES-GCM payload codec on every client of the service.

Workflow inputs, signals, results and failure messages are ids and statuses by design, but whatever an
operator or a later change puts in a payload would otherwise be stored in Temporal in clear. With
`PRM_PAYLOAD_ENCRYPTION_KEYS` set, the API's, the worker's and the CLI's clients encrypt every payload
(and failures' messages and stack traces, through the encoded-attributes failure converter) before it
leaves the process; Temporal stores ciphertext. Each payload names the key that encrypted it
(`encryption-key-id`), so keys rotate: the first key of the setting encrypts, every listed key decrypts.
A payload that was never encrypted (written before the keys were set) decodes as it is. The API serves
the codec-server endpoints (`/codec/encode`, `/codec/decode`) so an authorised operator still reads
payloads in the Temporal UI.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from core.keyfile import key_file

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256


class CodecError(ValueError):
    """A payload that cannot be decrypted here (an unknown key id, or altered ciphertext)."""


def parse_keys(value: str) -> tuple[str, dict[str, bytes]]:
    """`kid:base64key[,kid:base64key...]` -> (the id of the key that encrypts, every key by id)."""
    keys: dict[str, bytes] = {}
    current = ""
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        if not sep or not kid or not encoded:
            raise ValueError("each key is `id:base64`, e.g. `k1:<32 bytes in base64>`")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"key {kid!r} is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes (AES-256), not {len(key)}")
        if kid in keys:
            raise ValueError(f"key id {kid!r} is listed twice")
        keys[kid] = key
        current = current or kid
    if not keys:
        raise ValueError("no key given")
    return current, keys


def key_file_setting(path: Path) -> str:
    """The keys kept in `path` (owner-only), made on first use: how `prm run` encrypts without setup."""
    value = key_file(path, new_key_setting)
    parse_keys(value)
    return value


def new_key_setting(kid: str = "k1") -> str:
    """A fresh `kid:base64` key for PRM_PAYLOAD_ENCRYPTION_KEYS (what `make run` generates once)."""
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole serialized payload; the key id travels in the payload's metadata."""

    def __init__(self, current: str, keys: dict[str, bytes]) -> None:
        self.current = current
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}

    @classmethod
    def from_setting(cls, value: str) -> EncryptionCodec:
        """The codec for a `PRM_PAYLOAD_ENCRYPTION_KEYS` value."""
        return cls(*parse_keys(value))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the current key."""
        cipher = self._ciphers[self.current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self.current.encode())
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: self.current.encode()}, data=nonce + sealed)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload with the key it names; others pass through unchanged."""
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise CodecError(f"payload encrypted with unknown key {kid!r}")
            try:
                plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], kid.encode())
            except Exception as exc:  # cryptography's InvalidTag: altered or foreign ciphertext
                raise CodecError(f"payload under key {kid!r} does not decrypt") from exc
            decoded.append(Payload.FromString(plain))
        return decoded


def data_converter(keys_setting: str | None) -> DataConverter:
    """The service's data converter: encrypting payloads and failure details when keys are set."""
    if not keys_setting:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec.from_setting(keys_setting),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


class InvalidPayloads(CodecError):
    """The Temporal UI's payloads are not valid proto3 JSON (metadata values and data are base64)."""


async def transcode_json(
    codec: EncryptionCodec | None, body: dict[str, Any], *, decode: bool
) -> dict[str, Any]:
    """The Temporal UI's `Payloads` (proto3 JSON) decoded (or encoded) with `codec`, unchanged without one.
    InvalidPayloads for content that does not parse; CodecError for payloads that do not decrypt."""
    try:
        payloads: Sequence[Payload] = json_format.ParseDict(body, Payloads()).payloads
    except (json_format.ParseError, DecodeError) as exc:
        raise InvalidPayloads("The payloads are not valid (metadata values and data are base64).") from exc
    if codec is not None:
        payloads = await (codec.decode(payloads) if decode else codec.encode(payloads))
    return json_format.MessageToDict(Payloads(payloads=list(payloads)))
