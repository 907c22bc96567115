"""SRTP receive side with SDES keys (RFC 3711, RFC 4568), a thin pylibsrtp call site.

Theory of operation
-------------------
The SRC offers ``a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:len]``;
it encrypts what it sends with that key, so the recorder's receiver is keyed with the
*offer's* key. The answer must carry a crypto line with the same tag and suite and a key of
our own (RFC 4568 section 7.1.2), made by :func:`make_answer_crypto`; the recorder never
sends media, so that key is never used for anything but the answer.

``unprotect`` returns the plain RTP packet, or None when libsrtp refuses it. A refusal for
authentication (wrong key, tampering) is counted in ``auth_failures`` and logged once at
warning level, never with the key; replayed packets (duplicates) are counted apart in
``replayed``. Supported suites are those of pylibsrtp's profiles: AES_CM_128_HMAC_SHA1_80,
AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714). The AES-256
counter-mode suites (RFC 6188) are not offered by pylibsrtp 1.0 and are refused, as are
MKIs.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

import pylibsrtp

from ..errors import RemoteProtocolError

__all__ = [
    "SUPPORTED_SUITES",
    "SrtpKeyError",
    "SrtpReceiver",
    "make_answer_crypto",
    "parse_key_params",
]

log = logging.getLogger(__name__)

# suite -> (pylibsrtp profile, master key + salt length in octets)
SUPPORTED_SUITES: dict[str, tuple[int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}
REPLAY_WINDOW = 1024


class SrtpKeyError(RemoteProtocolError):
    """The offered crypto attribute cannot be used (answer 488 Not Acceptable Here)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_hint=488)


def parse_key_params(suite: str, key_params: str) -> bytes:
    """Return the master key||salt of ``inline:<b64>[|lifetime][|mki:len]`` for ``suite``."""
    suite = suite.strip().upper()
    if suite not in SUPPORTED_SUITES:
        raise SrtpKeyError(f"unsupported SRTP suite {suite}")
    first = key_params.strip().split(";")[0]
    if not first.lower().startswith("inline:"):
        raise SrtpKeyError("SRTP key parameters must use the inline: method")
    fields = first[7:].split("|")
    for extra in fields[1:]:
        if ":" in extra:
            raise SrtpKeyError("SRTP MKI is not supported")
    try:
        key = base64.b64decode(fields[0] + "=" * (-len(fields[0]) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SrtpKeyError("SRTP key is not valid base64") from None
    need = SUPPORTED_SUITES[suite][1]
    if len(key) != need:
        raise SrtpKeyError(f"SRTP key for {suite} must be {need} octets, got {len(key)}")
    return key


class SrtpReceiver:
    """Unprotects the SRTP/SRTCP of one leg; failures are counted, never raised."""

    __slots__ = ("_session", "_warned", "auth_failures", "replayed", "suite")

    def __init__(self, suite: str, key_params: str) -> None:
        key = parse_key_params(suite, key_params)
        self.suite = suite.strip().upper()
        policy = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=SUPPORTED_SUITES[self.suite][0],
        )
        policy.window_size = REPLAY_WINDOW
        self._session = pylibsrtp.Session(policy=policy)
        self.auth_failures = 0
        self.replayed = 0
        self._warned = False

    def unprotect(self, data: bytes) -> bytes | None:
        """Plain RTP, or None (authentication failure, replay or garbage)."""
        try:
            return self._session.unprotect(bytes(data))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            self._failed(exc)
            return None

    def unprotect_rtcp(self, data: bytes) -> bytes | None:
        """Plain RTCP, or None."""
        try:
            return self._session.unprotect_rtcp(bytes(data))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            self._failed(exc)
            return None

    def _failed(self, exc: Exception) -> None:
        text = str(exc)
        if "replay" in text:
            self.replayed += 1
            return
        self.auth_failures += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "SRTP (%s): packet refused: %s (further failures only counted)", self.suite, text
            )


def make_answer_crypto(tag: int | str, suite: str) -> tuple[str, str]:
    """Our answer to an offered crypto line: ``("<tag> <suite> inline:<key>", "inline:<key>")``.

    The key is fresh random key||salt of the length the suite needs.
    """
    suite = suite.strip().upper()
    if suite not in SUPPORTED_SUITES:
        raise SrtpKeyError(f"unsupported SRTP suite {suite}")
    key = secrets.token_bytes(SUPPORTED_SUITES[suite][1])
    key_params = "inline:" + base64.b64encode(key).decode("ascii")
    return f"{tag} {suite} {key_params}", key_params
