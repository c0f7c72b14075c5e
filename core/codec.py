"""Temporal payloads encrypted at rest, each for its own tenant: an AES-GCM payload codec on every client of
the service, whose codec server lets a tenant read only its own payloads, and records every read.

Workflow inputs, signals, results and failure messages are ids and statuses by design, but whatever an
operator or a later change puts in a payload would otherwise be stored in Temporal in clear. With
`PRM_PAYLOAD_ENCRYPTION_KEYS` set, the API's, the worker's and the CLI's clients encrypt every payload
(and failures' messages and stack traces, through the encoded-attributes failure converter) before it
leaves the process; Temporal stores ciphertext.

Keys per tenant. Each payload is sealed with a key derived for its tenant: HKDF-SHA256 over a master key
of the setting, `info = b"prm-payload:" + tenant id`. The payload names the master key
(`encryption-key-id`) and the tenant (`encryption-tenant`, a uuid: not PHI), so keys rotate as before
(the first master key encrypts, every listed one decrypts) and rotate for every tenant at once; the
tenant and the workflow id (`encryption-workflow-id`, for the audit trail) are also the cipher's
associated data, so a payload relabelled for another tenant or workflow no longer decrypts. The worker
and the clients hold the master keys and decrypt every tenant's payloads (they run every tenant's
workflows); the codec server (`read`) decrypts only the caller's.

How the encoder learns the tenant, first answer wins:
1. the payload itself: every workflow input and every activity input is a dataclass with a top-level
   `tenant_id` (`domain/*/plan.py`), so its JSON names its tenant;
2. the sender's word: signals and updates carry no tenant, so whoever sends one says whose it is
   (`payloads_for_tenant`: the delivery of workflow commands, which carry their tenant, and the journey
   advance);
3. the workflow's: the serialization context (temporalio's `WithSerializationContext`) names the workflow
   every payload belongs to, and the codec remembers each workflow's tenant from the payloads of it that it
   has encoded or decoded (in this process, bounded). A worker decodes a workflow's input before it encodes
   anything for it (a new worker replays the history from its start), and an activity's input (which
   names the tenant) before its result, so results, queries' answers and failures find their tenant here.
A payload none of these places (a new call path that forgot to say, an SDK payload outside any workflow)
is sealed under the service's own key (`encryption-tenant: none`, derived the same way): the worker reads
it, no tenant's operator can (only the local development UI), and it is logged with its workflow id so the
gap is found. Unknown never means readable by everyone: it means readable by no tenant.

Payloads written before per-tenant keys (sealed with a master key itself, no `encryption-tenant`) still
decode in the worker and the clients, so running workflows carry on. The codec server shows such a
payload only to the tenant it proves to belong to (its own JSON names that tenant: workflow and activity
inputs); the rest of them (results, signals) stay encoded until those workflows end: they may be any
tenant's, and no role here is above a tenant. A payload that was never encrypted decodes as it is.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from core.keyfile import key_file

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"  # the master key
TENANT = "encryption-tenant"  # the tenant whose derived key sealed it (absent: sealed with the master key)
WORKFLOW = "encryption-workflow-id"  # the workflow it belongs to, when the SDK said
NO_TENANT = "none"  # the service's own key: for payloads whose tenant is not known
EVERY_TENANT = "*"  # the reader of every tenant's payloads: the local development UI only
NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256
MAX_REMEMBERED_WORKFLOWS = 100_000
MAX_DERIVED_KEYS = 10_000

_declared_tenant: ContextVar[str | None] = ContextVar("prm_payload_tenant", default=None)


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


def tenant_key(master: bytes, tenant: str) -> bytes:
    """The key that seals `tenant`'s payloads under `master` (HKDF-SHA256, info `prm-payload:<tenant>`)."""
    info = b"prm-payload:" + tenant.encode()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


def tenant_of(value: object) -> str | None:
    """A tenant id in its one spelling (a lower-case uuid); None for anything that is not one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and len(value) == 36:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    return None


def tenant_named_by(payload: Payload) -> str | None:
    """The tenant a JSON payload names at its top level (`tenant_id`: every workflow and activity input)."""
    if payload.metadata.get("encoding") != b"json/plain" or b'"tenant_id"' not in payload.data:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        return None
    return tenant_of(value.get("tenant_id")) if isinstance(value, dict) else None


@contextmanager
def payloads_for_tenant(tenant_id: object) -> Iterator[None]:
    """Seal the payloads sent inside this block that do not name their tenant (a signal's, an update's)
    for `tenant_id`: the sender says whose they are."""
    token = _declared_tenant.set(tenant_of(tenant_id))
    try:
        yield
    finally:
        _declared_tenant.reset(token)


@dataclasses.dataclass(frozen=True)
class PayloadAccount:
    """What the codec server did with one encrypted payload, as the audit trail records it: ids only."""

    tenant_id: str | None  # the tenant it was sealed for (or a legacy payload names); None when unknown
    workflow_id: str | None  # the workflow it belongs to, when the payload says
    disclosed: bool  # returned in clear (False: returned still encoded)


class _Keyring:
    """The master keys and the tenants' keys derived from them, shared by every copy of a codec."""

    def __init__(self, current: str, keys: dict[str, bytes]) -> None:
        self.current = current
        self._masters = keys
        self._legacy = {kid: AESGCM(key) for kid, key in keys.items()}
        self._derived: dict[tuple[str, str], AESGCM] = {}

    def cipher(self, kid: str, tenant: str | None) -> AESGCM:
        """The cipher of master key `kid` for `tenant` (None: the master key itself, as payloads sealed
        before per-tenant keys were)."""
        if kid not in self._masters:
            raise CodecError(f"payload encrypted with unknown key {kid!r}")
        if tenant is None:
            return self._legacy[kid]
        cipher = self._derived.get((kid, tenant))
        if cipher is None:
            if len(self._derived) >= MAX_DERIVED_KEYS:
                self._derived.clear()
            cipher = self._derived[(kid, tenant)] = AESGCM(tenant_key(self._masters[kid], tenant))
        return cipher


class _WorkflowTenants:
    """Each workflow's tenant, as its payloads named it in this process (the most recent ones kept)."""

    def __init__(self) -> None:
        self._tenants: OrderedDict[tuple[str, str], str] = OrderedDict()

    def remember(self, workflow: tuple[str, str] | None, tenant: str | None) -> None:
        """Note that `workflow`'s payloads are `tenant`'s."""
        if workflow is None or tenant is None or tenant == NO_TENANT:
            return
        self._tenants[workflow] = tenant
        self._tenants.move_to_end(workflow)
        if len(self._tenants) > MAX_REMEMBERED_WORKFLOWS:
            self._tenants.popitem(last=False)

    def get(self, workflow: tuple[str, str] | None) -> str | None:
        """The tenant of `workflow`, when this process has seen it."""
        return None if workflow is None else self._tenants.get(workflow)


def _associated_data(kid: str, tenant: str | None, workflow_id: str) -> bytes:
    if tenant is None:  # sealed with the master key itself (before per-tenant keys)
        return kid.encode()
    return json.dumps(["prm-payload", kid, tenant, workflow_id]).encode()


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-GCM over each whole serialized payload, under its tenant's key; the master key id, the tenant and
    the workflow travel in the payload's metadata (module docstring)."""

    def __init__(self, current: str, keys: dict[str, bytes]) -> None:
        self._keys = _Keyring(current, keys)
        self._tenants = _WorkflowTenants()
        self._workflow: tuple[str, str] | None = None  # (namespace, workflow id) of the context

    @property
    def current(self) -> str:
        """The id of the master key that encrypts."""
        return self._keys.current

    @classmethod
    def from_setting(cls, value: str) -> EncryptionCodec:
        """The codec for a `PRM_PAYLOAD_ENCRYPTION_KEYS` value."""
        return cls(*parse_keys(value))

    def with_context(self, context: SerializationContext) -> Self:
        """This codec for the payloads of the workflow `context` names (keys and memory shared)."""
        bound = copy.copy(self)
        bound._workflow = None
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
            if context.workflow_id:
                bound._workflow = (context.namespace, context.workflow_id)
        return bound

    @property
    def workflow_id(self) -> str | None:
        """The workflow this codec's payloads belong to (from the serialization context), if any."""
        return self._workflow[1] if self._workflow else None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the current key, for its tenant (module docstring)."""
        return [self._seal(payload, self._tenant_for(payload)) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload, whatever its tenant (the worker's and the clients' decode); others
        pass through unchanged."""
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                self._tenants.remember(self._workflow, tenant_named_by(payload))
                decoded.append(payload)
                continue
            plain = self._open(payload)
            sealed_for = _sealed_for(payload)
            self._tenants.remember(self._workflow, sealed_for or tenant_named_by(plain))
            decoded.append(plain)
        return decoded

    async def read(
        self, payloads: Sequence[Payload], reader: str
    ) -> tuple[list[Payload], list[PayloadAccount]]:
        """The codec server's decode for `reader` (a tenant id, or EVERY_TENANT): its own payloads in clear,
        every other encrypted payload still encoded, and an account of each encrypted one.
        CodecError when a payload does not decrypt (altered, relabelled, or under a key not held here)."""
        answered, accounts = [], []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                answered.append(payload)
                continue
            # Opened even when withheld: what the account names (tenant, workflow) is then authenticated.
            plain = self._open(payload)
            workflow_id = payload.metadata.get(WORKFLOW, b"").decode(errors="replace") or None
            sealed_for = _sealed_for(payload)
            if sealed_for is None:  # before per-tenant keys: it is the reader's only if it says so
                owner = tenant_named_by(plain)
            else:
                owner = None if sealed_for == NO_TENANT else sealed_for
            disclosed = reader == EVERY_TENANT or (owner is not None and owner == reader)
            answered.append(plain if disclosed else payload)
            accounts.append(PayloadAccount(tenant_id=owner, workflow_id=workflow_id, disclosed=disclosed))
        return answered, accounts

    async def seal_for(self, payloads: Sequence[Payload], tenant: str | None) -> list[Payload]:
        """The codec server's encode: each payload sealed for `tenant` (None: as `encode` would)."""
        return [self._seal(p, tenant_of(tenant) or self._tenant_for(p)) for p in payloads]

    def _tenant_for(self, payload: Payload) -> str:
        tenant = tenant_named_by(payload) or _declared_tenant.get() or self._tenants.get(self._workflow)
        if tenant is None:
            log.warning("payload of workflow %s sealed without a tenant (service key)", self.workflow_id)
            return NO_TENANT
        self._tenants.remember(self._workflow, tenant)
        return tenant

    def _seal(self, payload: Payload, tenant: str) -> Payload:
        kid, workflow_id = self._keys.current, self.workflow_id or ""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys.cipher(kid, tenant).encrypt(
            nonce, payload.SerializeToString(), _associated_data(kid, tenant, workflow_id)
        )
        metadata = {"encoding": ENCODING, KEY_ID: kid.encode(), TENANT: tenant.encode()}
        if workflow_id:
            metadata[WORKFLOW] = workflow_id.encode()
        return Payload(metadata=metadata, data=nonce + sealed)

    def _open(self, payload: Payload) -> Payload:
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        tenant = _sealed_for(payload)
        workflow_id = payload.metadata.get(WORKFLOW, b"").decode(errors="replace")
        cipher = self._keys.cipher(kid, tenant)
        try:
            plain = cipher.decrypt(
                payload.data[:NONCE_BYTES],
                payload.data[NONCE_BYTES:],
                _associated_data(kid, tenant, workflow_id),
            )
        except Exception as exc:  # cryptography's InvalidTag: altered, relabelled or foreign ciphertext
            raise CodecError(f"payload under key {kid!r} does not decrypt") from exc
        return Payload.FromString(plain)


def _sealed_for(payload: Payload) -> str | None:
    """The tenant a payload's metadata says it was sealed for (NO_TENANT included); None for a payload
    sealed with a master key itself (before per-tenant keys)."""
    value = payload.metadata.get(TENANT)
    return None if value is None else value.decode(errors="replace")


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


def _parse(body: dict[str, Any]) -> Sequence[Payload]:
    try:
        return json_format.ParseDict(body, Payloads()).payloads
    except (json_format.ParseError, DecodeError) as exc:
        raise InvalidPayloads("The payloads are not valid (metadata values and data are base64).") from exc


def _render(payloads: Sequence[Payload]) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=list(payloads)))


async def read_json(
    codec: EncryptionCodec | None, body: dict[str, Any], reader: str
) -> tuple[dict[str, Any], list[PayloadAccount]]:
    """The Temporal UI's `Payloads` (proto3 JSON) as `reader` may see them (`EncryptionCodec.read`), and the
    account of each encrypted one; unchanged without a codec. InvalidPayloads for content that does not
    parse; CodecError for a payload of the reader's that does not decrypt."""
    payloads = _parse(body)
    if codec is None:
        return _render(payloads), []
    answered, accounts = await codec.read(payloads, reader)
    return _render(answered), accounts


async def seal_json(
    codec: EncryptionCodec | None, body: dict[str, Any], tenant: str | None
) -> dict[str, Any]:
    """The Temporal UI's `Payloads` (proto3 JSON) sealed for `tenant`; unchanged without a codec."""
    payloads = _parse(body)
    return _render(payloads if codec is None else await codec.seal_for(payloads, tenant))
