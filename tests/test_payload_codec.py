"""The payload codec (core.codec): AES-GCM per payload, keys named in the payload, rotation."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload

from core.codec import ENCODING, KEY_ID, CodecError, EncryptionCodec, new_key_setting, parse_keys
from core.settings import Settings

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"tenant_id": "t-1", "instance_id": "i-1"}')


async def test_a_payload_round_trips_and_is_ciphertext_in_between() -> None:
    codec = EncryptionCodec.from_setting(new_key_setting("k1"))
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    assert b"tenant_id" not in sealed.data and b"t-1" not in sealed.data
    assert await codec.decode([sealed]) == [PLAIN]
    (again,) = await codec.encode([PLAIN])
    assert again.data != sealed.data  # a fresh nonce every time


async def test_after_a_rotation_old_payloads_still_decrypt_and_new_ones_use_the_new_key() -> None:
    old = new_key_setting("k1")
    (sealed_before,) = await EncryptionCodec.from_setting(old).encode([PLAIN])
    rotated = EncryptionCodec.from_setting(f"{new_key_setting('k2')},{old}")
    (sealed_after,) = await rotated.encode([PLAIN])
    assert sealed_after.metadata[KEY_ID] == b"k2"
    assert await rotated.decode([sealed_before, sealed_after]) == [PLAIN, PLAIN]


async def test_an_unknown_key_or_altered_ciphertext_is_refused_and_clear_payloads_pass_through() -> None:
    codec = EncryptionCodec.from_setting(new_key_setting("k1"))
    (sealed,) = await EncryptionCodec.from_setting(new_key_setting("k9")).encode([PLAIN])
    with pytest.raises(CodecError, match="unknown key 'k9'"):
        await codec.decode([sealed])
    (mine,) = await codec.encode([PLAIN])
    altered = Payload(metadata=mine.metadata, data=mine.data[:-1] + bytes([mine.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="does not decrypt"):
        await codec.decode([altered])
    assert await codec.decode([PLAIN]) == [PLAIN]  # written before the keys were set


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("k1", "id:base64"),
        ("k1:not base64!", "not valid base64"),
        ("k1:c2hvcnQ=", "32 bytes"),
        (" , ", "no key"),
    ],
)
def test_a_malformed_key_setting_is_refused_without_echoing_the_key(setting: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_keys(setting)
    with pytest.raises(ValueError) as raised:
        Settings(payload_encryption_keys=setting)
    assert "c2hvcnQ" not in str(raised.value)
