"""Optional encryption at rest of finished recordings: AES-256-GCM, one key id per recording.

Theory of operation
-------------------
A recording is encrypted as a whole (an MP3 of a long call is a few tens of MB; GCM allows
64 GiB per message) by :func:`encrypt_bytes` right after it is encoded, before it is written
by atomic rename, so that plaintext audio never reaches the recordings share. The index keeps
the SHA-256 *of the stored bytes* (so ``verify`` checks the file as it is on disk, without
needing the key) and the ``key_id`` of the key used.

File format (version 1), all integers big-endian::

    offset  size  field
    0       6     magic  b"SRENC\\x00"
    6       1     version = 1
    7       1     n = length of the key id (1..64)
    8       n     key id, ASCII [0-9a-z_-]
    8+n     12    nonce (random, never reused: 96 bits from os.urandom per file)
    20+n    ...   AES-256-GCM ciphertext of the whole plaintext, then the 16-byte GCM tag

The header (bytes ``0 .. 20+n``) is the GCM *associated data*: a file whose header is changed
(another key id, another version, a moved nonce) fails authentication like one whose audio is
changed. Decryption returns the plaintext only when the tag verifies; there is no partial
output.

Keys: 32 random bytes, given as a file or an environment variable holding 64 hex digits or
the base64 of the 32 bytes (a key file may also hold the 32 raw bytes). Generate one with
``python -c "import os; print(os.urandom(32).hex())" > recording.key``. A key's id is
derived from the key itself (``k`` + the first 16 hex digits of a SHA-256 over a fixed label and
the key), so it names the key without revealing it and the same key always has the same id.
Rotation: encrypt with the newest key; keep older keys in the :class:`KeyRing` used for reads.

Authorised reads (portal playback, export) call :func:`decrypt_for` with the row's ``key_id``
and the stored bytes; an unencrypted file (``key_id`` ``None``, no magic) passes through
unchanged, so a store where encryption was switched on later reads transparently. Checking
*who* may read is the caller's business (the portal's access rules, its audit events).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from siprec_recorder.errors import RecorderError

__all__ = [
    "DEFAULT_KEY_ENV",
    "HEADER_VERSION",
    "MAGIC",
    "DecryptionError",
    "EncryptionKey",
    "KeyLoadError",
    "KeyRing",
    "decrypt_bytes",
    "decrypt_for",
    "encrypt_bytes",
    "is_encrypted",
    "key_id_of",
    "load_key",
    "load_keyring",
    "parse_header",
]

MAGIC = b"SRENC\x00"
HEADER_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
DEFAULT_KEY_ENV = "SIPREC_RECORDING_KEY"
_KEY_ID_RE = re.compile(r"[0-9a-z_-]{1,64}")
_KEY_ID_LABEL = b"siprec-recorder key id v1\x00"


class DecryptionError(RecorderError):
    """The bytes cannot be decrypted: not our format, unknown key, wrong key, or tampered."""


class KeyLoadError(RecorderError):
    """A key could not be loaded (the message says from where and why; never the key)."""


def key_id_of(key: bytes) -> str:
    """The id of ``key``: ``k`` + 16 hex digits of ``sha256(label || key)``."""
    return "k" + hashlib.sha256(_KEY_ID_LABEL + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """A 32-byte AES-256 key and its id. ``repr`` never shows the key."""

    key: bytes = field(repr=False)
    key_id: str = ""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE:
            raise KeyLoadError(f"an AES-256 key is {KEY_SIZE} bytes, got {len(self.key)}")
        if not self.key_id:
            object.__setattr__(self, "key_id", key_id_of(self.key))
        if not _KEY_ID_RE.fullmatch(self.key_id):
            raise KeyLoadError(f"key id must match [0-9a-z_-]{{1,64}}, got {self.key_id!r}")

    @classmethod
    def generate(cls) -> EncryptionKey:
        """A new random key (for tests and for ``recording.key`` generation)."""
        return cls(os.urandom(KEY_SIZE))


def _decode_key_text(text: str, where: str) -> bytes:
    value = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == KEY_SIZE:
        return raw
    raise KeyLoadError(f"{where}: expected 64 hex digits or base64 of {KEY_SIZE} bytes")


def load_key(
    *,
    file: str | Path | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> EncryptionKey:
    """Load the key from ``file`` (hex, base64 or 32 raw bytes) or environment variable ``env``.

    Exactly one source must be given. Errors name the source, never the key's bytes.
    """
    if (file is None) == (env is None):
        raise KeyLoadError("give exactly one key source: a file or an environment variable")
    if file is not None:
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyLoadError(f"key file {path}: {exc.strerror or exc}") from None
        if len(data) == KEY_SIZE:  # raw bytes (the text forms are 64 or 44 characters)
            return EncryptionKey(data)
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise KeyLoadError(f"key file {path}: not 32 raw bytes, hex or base64") from None
        return EncryptionKey(_decode_key_text(text, f"key file {path}"))
    assert env is not None
    source = os.environ if environ is None else environ
    env_text = source.get(env)
    if not env_text:
        raise KeyLoadError(f"environment variable {env}: not set")
    return EncryptionKey(_decode_key_text(env_text, f"environment variable {env}"))


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Keys by id for reading; ``current`` (the first key given) for writing."""

    keys: Mapping[str, EncryptionKey]
    current_id: str | None = None

    @classmethod
    def of(cls, keys: Iterable[EncryptionKey]) -> KeyRing:
        """A ring of ``keys``; the first one is the current (writing) key."""
        listed = list(keys)
        return cls({k.key_id: k for k in listed}, listed[0].key_id if listed else None)

    @property
    def current(self) -> EncryptionKey | None:
        return None if self.current_id is None else self.keys[self.current_id]

    def get(self, key_id: str) -> EncryptionKey | None:
        return self.keys.get(key_id)


def load_keyring(
    *,
    key_file: str | Path | None = None,
    key_env: str | None = None,
    old_key_files: Iterable[str | Path] = (),
    environ: Mapping[str, str] | None = None,
) -> KeyRing:
    """The ring a process uses: the current key (from ``key_file``, else from the environment
    variable ``key_env``) first, then retired keys kept for reading older recordings."""
    keys: list[EncryptionKey] = []
    if key_file:
        keys.append(load_key(file=key_file))
    elif key_env:
        keys.append(load_key(env=key_env, environ=environ))
    else:
        raise KeyLoadError("encryption is on but no key is configured (key file or variable)")
    keys.extend(load_key(file=f) for f in old_key_files)
    return KeyRing.of(keys)


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed header of an encrypted file."""

    version: int
    key_id: str
    nonce: bytes
    length: int  # bytes of header, i.e. where the ciphertext starts


def is_encrypted(data: bytes) -> bool:
    """True when ``data`` starts with the magic of this format."""
    return data[: len(MAGIC)] == MAGIC


def _build_header(key_id: str, nonce: bytes) -> bytes:
    kid = key_id.encode("ascii")
    return MAGIC + struct.pack("!BB", HEADER_VERSION, len(kid)) + kid + nonce


def parse_header(data: bytes) -> Header:
    """Parse the header; :class:`DecryptionError` when ``data`` is not in this format."""
    if not is_encrypted(data):
        raise DecryptionError("not an encrypted recording (magic missing)")
    if len(data) < len(MAGIC) + 2:
        raise DecryptionError("encrypted recording truncated in its header")
    version, n = struct.unpack_from("!BB", data, len(MAGIC))
    if version != HEADER_VERSION:
        raise DecryptionError(f"unsupported encrypted-file version {version}")
    start = len(MAGIC) + 2
    kid_bytes = data[start : start + n]
    nonce = data[start + n : start + n + NONCE_SIZE]
    if len(kid_bytes) != n or len(nonce) != NONCE_SIZE:
        raise DecryptionError("encrypted recording truncated in its header")
    key_id = kid_bytes.decode("ascii", errors="replace")
    if not _KEY_ID_RE.fullmatch(key_id):
        raise DecryptionError("encrypted recording has a malformed key id")
    length = start + n + NONCE_SIZE
    if len(data) < length + TAG_SIZE:
        raise DecryptionError("encrypted recording truncated (no authentication tag)")
    return Header(version, key_id, nonce, length)


def encrypt_bytes(data: bytes, key: EncryptionKey) -> tuple[bytes, str]:
    """Encrypt ``data`` with ``key``; returns ``(blob, key_id)`` (blob in the format above)."""
    nonce = os.urandom(NONCE_SIZE)
    header = _build_header(key.key_id, nonce)
    return header + AESGCM(key.key).encrypt(nonce, data, header), key.key_id


def decrypt_bytes(blob: bytes, key: EncryptionKey) -> bytes:
    """Decrypt ``blob`` with ``key``; :class:`DecryptionError` on any mismatch or tampering."""
    header = parse_header(blob)
    if header.key_id != key.key_id:
        raise DecryptionError(
            f"encrypted with key {header.key_id}, not with the given key {key.key_id}"
        )
    try:
        return AESGCM(key.key).decrypt(header.nonce, blob[header.length :], blob[: header.length])
    except InvalidTag:
        raise DecryptionError(
            f"authentication failed: wrong key or altered file (key id {header.key_id})"
        ) from None


def decrypt_for(blob: bytes, keys: KeyRing | EncryptionKey | None, key_id: str | None) -> bytes:
    """The plaintext of a stored recording, for an authorised read.

    ``key_id`` is the recording's indexed key id. ``None`` means the recording was stored in
    clear: the bytes come back unchanged, unless they carry the magic (then the index and the
    file disagree and :class:`DecryptionError` is raised). With a key id, the file must be
    encrypted under that id and ``keys`` must hold that key.
    """
    if key_id is None:
        if is_encrypted(blob):
            raise DecryptionError("file is encrypted but the index records no key id")
        return blob
    header = parse_header(blob)
    if header.key_id != key_id:
        raise DecryptionError(f"file is encrypted with key {header.key_id}, index says {key_id}")
    key: EncryptionKey | None
    if isinstance(keys, EncryptionKey):
        key = keys if keys.key_id == key_id else None
    elif isinstance(keys, KeyRing):
        key = keys.get(key_id)
    else:
        key = None
    if key is None:
        raise DecryptionError(f"key {key_id} is not available to this process")
    return decrypt_bytes(blob, key)
