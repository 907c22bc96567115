"""Encryption at rest: round trip, wrong key, tampering, key loading, the documented header."""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

import pytest

from siprec_recorder.compliance.crypto import (
    MAGIC,
    DecryptionError,
    EncryptionKey,
    KeyLoadError,
    KeyRing,
    decrypt_bytes,
    decrypt_for,
    encrypt_bytes,
    is_encrypted,
    key_id_of,
    load_key,
    load_keyring,
    parse_header,
)

from .conftest import Store, tone_mp3


def test_round_trip_of_a_real_mp3() -> None:
    key = EncryptionKey.generate()
    mp3 = tone_mp3(3.0)
    blob, key_id = encrypt_bytes(mp3, key)
    assert key_id == key.key_id == key_id_of(key.key)
    assert is_encrypted(blob) and not is_encrypted(mp3)
    assert mp3 not in blob and mp3[:64] not in blob
    assert decrypt_for(blob, key, key_id) == mp3
    assert decrypt_for(blob, KeyRing.of([EncryptionKey.generate(), key]), key_id) == mp3
    # Every file gets its own nonce: encrypting twice gives different bytes.
    assert encrypt_bytes(mp3, key)[0] != blob


def test_header_layout_is_as_documented() -> None:
    key = EncryptionKey(bytes(range(32)))
    blob, key_id = encrypt_bytes(b"x" * 100, key)
    kid = key_id.encode()
    assert blob[:6] == MAGIC == b"SRENC\x00"
    assert struct.unpack("!BB", blob[6:8]) == (1, len(kid))
    assert blob[8 : 8 + len(kid)] == kid
    header = parse_header(blob)
    assert header.nonce == blob[8 + len(kid) : 20 + len(kid)]
    assert header.length == 20 + len(kid)
    assert len(blob) == header.length + 100 + 16  # ciphertext + GCM tag


def test_wrong_key_fails() -> None:
    key, other = EncryptionKey.generate(), EncryptionKey.generate()
    blob, key_id = encrypt_bytes(b"secret call", key)
    with pytest.raises(DecryptionError, match="not available"):
        decrypt_for(blob, other, key_id)
    with pytest.raises(DecryptionError, match="not with the given key"):
        decrypt_bytes(blob, other)
    # The same key id with other key bytes (a wrong key file under the right name): GCM says no.
    impostor = EncryptionKey(other.key, key_id=key_id)
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt_for(blob, impostor, key_id)
    with pytest.raises(DecryptionError, match="not available"):
        decrypt_for(blob, None, key_id)


@pytest.mark.parametrize("where", ["ciphertext", "tag", "nonce", "key id", "version"])
def test_any_changed_byte_fails(where: str) -> None:
    key = EncryptionKey.generate()
    blob = bytearray(encrypt_bytes(b"a" * 1000, key)[0])
    n = len(key.key_id)
    pos = {
        "ciphertext": 20 + n + 500,
        "tag": len(blob) - 1,
        "nonce": 8 + n + 3,
        "key id": 8,
        "version": 6,
    }[where]
    blob[pos] ^= 0x01
    with pytest.raises(DecryptionError):
        decrypt_bytes(bytes(blob), key)


def test_index_and_file_must_agree() -> None:
    key = EncryptionKey.generate()
    blob, key_id = encrypt_bytes(b"a", key)
    assert decrypt_for(b"ID3plain", None, None) == b"ID3plain"  # clear store, clear read
    with pytest.raises(DecryptionError, match="no key id"):
        decrypt_for(blob, key, None)
    with pytest.raises(DecryptionError, match="magic"):
        decrypt_for(b"ID3plain", key, key_id)
    with pytest.raises(DecryptionError, match="index says"):
        decrypt_for(blob, key, "kother")
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt_bytes(blob[:30], key)


def test_load_key_from_file_and_environment(tmp_path: Path) -> None:
    raw = os.urandom(32)
    hex_file = tmp_path / "k.hex"
    hex_file.write_text(raw.hex() + "\n")
    b64_file = tmp_path / "k.b64"
    b64_file.write_text(base64.b64encode(raw).decode())
    raw_file = tmp_path / "k.bin"
    raw_file.write_bytes(raw)
    ids = {load_key(file=p).key_id for p in (hex_file, b64_file, raw_file)}
    assert ids == {key_id_of(raw)}
    assert load_key(env="K", environ={"K": raw.hex()}).key == raw
    with pytest.raises(KeyLoadError, match="environment variable K: not set"):
        load_key(env="K", environ={})
    with pytest.raises(KeyLoadError, match="64 hex digits"):
        load_key(env="K", environ={"K": "abcd"})
    with pytest.raises(KeyLoadError, match="not found|No such file"):
        load_key(file=tmp_path / "missing")
    with pytest.raises(KeyLoadError, match="exactly one"):
        load_key()
    # The key never shows in a repr or an error message.
    k = load_key(file=hex_file)
    assert raw.hex() not in repr(k)
    bad = tmp_path / "bad"
    bad.write_text(raw.hex()[:-2])
    with pytest.raises(KeyLoadError) as info:
        load_key(file=bad)
    assert raw.hex()[:-2] not in str(info.value)


def test_keyring_current_key_first_and_old_keys_for_reading(tmp_path: Path) -> None:
    old, new = EncryptionKey.generate(), EncryptionKey.generate()
    (tmp_path / "old.key").write_text(old.key.hex())
    ring = load_keyring(
        key_env="K", environ={"K": new.key.hex()}, old_key_files=[tmp_path / "old.key"]
    )
    assert ring.current == new
    blob, kid = encrypt_bytes(b"recorded last year", old)
    assert decrypt_for(blob, ring, kid) == b"recorded last year"
    with pytest.raises(KeyLoadError, match="no key is configured"):
        load_keyring()


async def test_encrypted_recording_in_the_store(store: Store) -> None:
    """As the finaliser would store it: the blob is written atomically, its SHA-256 and key id
    indexed; ``verify`` checks it without the key; an authorised read gets the MP3 back."""
    from datetime import UTC, datetime

    from siprec_recorder.storage.index import FinishedRecording, NewRecording
    from siprec_recorder.storage.integrity import verify
    from tests.integration.audio import decode_mp3

    key = EncryptionKey.generate()
    mp3 = tone_mp3(2.0)
    blob, key_id = encrypt_bytes(mp3, key)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    rec_id = await store.index.create_recording(
        NewRecording(call_id="enc", start=start, recorded_number="+32470000001", key_id=key_id)
    )
    rel = store.layout.relative_path("+32470000001", start, "in", "+3222", rec_id)
    sha, size = store.layout.write_atomic(rel, blob)
    side = store.layout.write_sidecar(rel, {"id": rec_id, "key_id": key_id, "sha256": sha})
    await store.index.finish_recording(
        rec_id,
        FinishedRecording(
            end=start, duration_s=2.0, file=rel, sidecar=side, sha256=sha, size_bytes=size
        ),
    )
    assert await verify(store.db, store.layout) == []
    row = await store.index.get(rec_id)
    assert row is not None and row["key_id"] == key_id
    stored = (store.root / row["file"]).read_bytes()
    assert is_encrypted(stored)
    plain = decrypt_for(stored, KeyRing.of([key]), row["key_id"])
    assert plain == mp3
    pcm, rate = decode_mp3(plain)
    assert rate == 8000 and abs(len(pcm) / rate - 2.0) < 0.05
    with pytest.raises(DecryptionError):
        decrypt_for(stored, EncryptionKey.generate(), row["key_id"])
