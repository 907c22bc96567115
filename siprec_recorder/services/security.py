"""Password hashing, TOTP, tokens: the small primitives under the portal's accounts.

Passwords are hashed with argon2id (argon2-cffi defaults). Session and four-eyes tokens are
random 256-bit values; only their SHA-256 is stored, so a copy of the database does not let
anyone in. TOTP follows RFC 6238 (30 s steps, 6 digits, one step of drift accepted).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "as_utc",
    "user_time",
    "check_password_strength",
    "common_passwords",
    "is_common_password",
    "hash_password",
    "hash_token",
    "new_token",
    "new_totp_secret",
    "same_token",
    "verify_password",
    "verify_totp",
]

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the login is unknown, so that both cases cost the same time.
_DUMMY_HASH = _hasher.hash("not a password of anybody")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords (lower case)."""
    text = (Path(__file__).parent / "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def is_common_password(password: str) -> bool:
    """Whether ``password`` is on the list, also with trailing digits and symbols removed
    (``dragon2024!`` is ``dragon``)."""
    low = password.lower()
    words = common_passwords()
    if low in words:
        return True
    stem = low.rstrip("0123456789!@#$%^&*()_-+=.?,;:~ ")
    return len(stem) >= 6 and stem in words


def check_password_strength(password: str, *, login: str) -> str | None:
    """Why ``password`` is not acceptable as a new password, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if password.lower() == login.lower() or login.lower() in password.lower():
        return "the password must not contain the login"
    if len(set(password)) < 4:
        return "the password must use at least 4 different characters"
    if is_common_password(password):
        return "this password is on a list of common or breached passwords; choose another"
    return None


def new_token() -> str:
    """A fresh random token for a cookie or a form."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_totp_secret() -> str:
    """A base32 TOTP secret for an authenticator app."""
    return pyotp.random_base32()


def verify_totp(secret: str, code: str, now: datetime) -> bool:
    """Whether ``code`` is valid for ``secret`` at ``now`` (one 30 s step of drift either way)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return False
    return bool(pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1))


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        from .errors import Unprocessable

        raise Unprocessable(f"date and time out of range: {value.isoformat()}") from None


# Dates typed by users must fall in this span (UTC); outside it, arithmetic such as "the
# end of that day" or a time-zone shift would leave the calendar.
MIN_USER_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_USER_TIME = datetime(9998, 12, 31, tzinfo=UTC)


def user_time(
    value: datetime, what: str, *, zone: Any = None, plus: timedelta | None = None
) -> datetime:
    """A date and time given by a user, as aware UTC; ``zone`` (a tzinfo) is assumed when
    ``value`` has none; raises a 422 naming ``what`` when it is out of range."""
    from .errors import Unprocessable

    try:
        if value.tzinfo is None and zone is not None:
            value = value.replace(tzinfo=zone)
        if plus is not None:
            value = value + plus
        out = as_utc(value)
    except (OverflowError, Unprocessable):
        out = None
    if out is None or not MIN_USER_TIME <= out <= MAX_USER_TIME:
        raise Unprocessable(
            f"{what}: date out of range (between {MIN_USER_TIME:%Y-%m-%d} and "
            f"{MAX_USER_TIME:%Y-%m-%d})"
        )
    return out
