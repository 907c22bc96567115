"""Settings of the portal, handed to :func:`~siprec_recorder.web.app.create_app` by the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["WebSettings", "utc_now"]


def utc_now() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the portal needs to know; every field has a safe default.

    ``clock`` is the only source of "now" in the portal, so tests can move time (expiry of
    access requests, lockouts, session lifetime) without sleeping.
    """

    secure_cookies: bool = True
    session_ttl: float = 8 * 3600.0  # seconds of inactivity before a session ends
    lockout_threshold: int = 5  # consecutive failures that lock an account
    lockout_minutes: float = 15.0
    four_eyes_default: bool = False  # four-eyes login for every account, whatever its flag
    four_eyes_window: float = 300.0  # seconds the second person has to confirm a login
    cookie_name: str = "siprec_session"
    page_size: int = 50
    max_page_size: int = 500
    max_scan: int = 50_000  # recordings examined per search at most
    max_upload_bytes: int = 20 * 1024 * 1024
    clock: Callable[[], datetime] = field(default=utc_now)
    # Keys for recordings encrypted at rest (a ``compliance.crypto.KeyRing`` or one key);
    # None: encrypted recordings cannot be played (clear ones always can).
    keyring: Any = None
    # The object store finished recordings go to (None: they stay in the folder).
    store: Any = None
