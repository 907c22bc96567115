"""Settings of the portal, handed to :func:`~siprec_recorder.web.app.create_app` by the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["WebSettings", "settings_from_config", "utc_now"]


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
    # Failures (within lockout_minutes) after which an account may not log in *from that
    # source* for lockout_minutes; a source that fails source_threshold times is blocked
    # whatever login it tries. Nobody can lock an account for everybody else.
    lockout_threshold: int = 5
    lockout_minutes: float = 15.0
    source_threshold: int = 20
    four_eyes_roles: tuple[str, ...] = ("admin",)  # who may be the second person
    four_eyes_default: bool = False  # four-eyes login for every account, whatever its flag
    four_eyes_window: float = 300.0  # seconds the second person has to confirm a login
    cookie_name: str = "siprec_session"
    page_size: int = 50
    max_page_size: int = 500
    max_scan: int = 50_000  # recordings examined per search at most
    max_upload_bytes: int = 20 * 1024 * 1024
    # Largest answer of the in-page player's audio endpoint (about a minute of a 32 kbit/s
    # MP3): playing streams by pieces, only a download (admins) hands out the whole file.
    stream_max_bytes: int = 256 * 1024
    clock: Callable[[], datetime] = field(default=utc_now)
    # Keys for recordings encrypted at rest (a ``compliance.crypto.KeyRing`` or one key);
    # None: encrypted recordings cannot be played (clear ones always can).
    keyring: Any = None
    # The object store finished recordings go to (None: they stay in the folder).
    store: Any = None
    # ``[storage] retention_years``: the retention an object gets when its row names none
    # (a legal hold carried to the store sets retention and hold together).
    retention_years: int = 5
    ldap: Any = None  # a ``services.directory.LdapSettings`` when directory login is on
    # Every login answer takes at least this long, so that unknown, wrong and blocked
    # logins cannot be told apart by timing.
    login_floor_seconds: float = 0.35


def settings_from_config(config: Any, *, keyring: Any = None) -> WebSettings:
    """The portal's settings from the ``[web]`` section of a ``Config``."""
    w = config.web
    ldap = None
    if w.ldap_url:
        from .directory import LdapSettings

        ldap = LdapSettings(
            url=w.ldap_url,
            user_dn=w.ldap_user_dn,
            group_base=w.ldap_group_base,
            groups={
                "admin": tuple(w.ldap_admin_groups),
                "auditor": tuple(w.ldap_auditor_groups),
                "standard": tuple(w.ldap_standard_groups),
            },
            timeout=w.ldap_timeout,
        )
    return WebSettings(
        secure_cookies=bool(w.tls_certificate),
        keyring=keyring,
        four_eyes_roles=tuple(w.four_eyes_confirm_roles),
        stream_max_bytes=w.stream_max_kib * 1024,
        lockout_threshold=w.login_failures_per_account,
        source_threshold=w.login_failures_per_source,
        lockout_minutes=w.login_block_minutes,
        ldap=ldap,
        retention_years=int(config.storage.retention_years),
    )
