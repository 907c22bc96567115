"""Accounts: login (argon2, lockout, TOTP, four-eyes), sessions and password changes.

Theory of operation
-------------------
``login`` checks the password (and the TOTP code when the account has a secret). A failure
increments ``failed_logins``; reaching ``lockout_threshold`` sets ``locked_until``. A success
resets the counter and either opens a session or, for a four-eyes account, creates a pending
login whose token the browser carries to the second step, where a *different*, active
account must enter its own credentials (and code) before the session of the first is opened.
A session whose account must change its password may do nothing else until it has.

Sessions are rows in ``web_sessions`` keyed by the SHA-256 of the cookie value; each has its
own CSRF token. They end after ``session_ttl`` seconds without use, on logout, and when the
account is deactivated. Every outcome is written to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import User

from .errors import BadRequest, Forbidden, Unauthorized
from .models import PendingLogin, WebSession
from .security import (
    as_utc,
    check_password_strength,
    hash_password,
    hash_token,
    new_token,
    verify_password,
    verify_totp,
)
from .settings import WebSettings

__all__ = ["ROLES", "AuthService", "LoginOutcome", "Principal"]

ROLES: tuple[str, ...] = ("standard", "admin", "auditor")
_BAD_CREDENTIALS = "invalid login or password"


@dataclass(frozen=True, slots=True)
class Principal:
    """The user behind a request."""

    login: str
    name: str
    role: str
    must_change_password: bool
    csrf_token: str
    session_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_auditor(self) -> bool:
        return self.role == "auditor"

    @property
    def reads_all(self) -> bool:
        """Admins and auditors see every recording."""
        return self.role in ("admin", "auditor")


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """``kind`` is ``"session"`` (token is a session cookie) or ``"second_person"``
    (token identifies the pending four-eyes login)."""

    kind: str
    token: str
    login: str
    must_change_password: bool = False
    csrf_token: str = ""


class AuthService:
    """Logins, sessions and passwords of the portal's users."""

    def __init__(self, db: Database, settings: WebSettings) -> None:
        self._db = db
        self._settings = settings

    def _now(self) -> datetime:
        return as_utc(self._settings.clock())

    async def _audit(
        self, s: AsyncSession, actor: str, action: str, subject: str, **details: Any
    ) -> None:
        await append_event(s, actor=actor, action=action, subject=subject, details=details)

    async def _check_credentials(
        self, s: AsyncSession, login: str, password: str, otp: str, *, step: str
    ) -> User:
        """The active, unlocked user whose credentials these are; counts failures."""
        now = self._now()
        user = (await s.execute(select(User).where(User.login == login))).scalar_one_or_none()
        if user is None:
            verify_password(None, password)  # same cost as a real check
            await self._audit(
                s,
                login or "-",
                "web.login_failed",
                f"user:{login}",
                reason="unknown login",
                step=step,
            )
            await s.commit()
            raise Unauthorized(_BAD_CREDENTIALS)
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            await self._audit(
                s, login, "web.login_failed", f"user:{login}", reason="locked", step=step
            )
            await s.commit()
            until = as_utc(user.locked_until).strftime("%Y-%m-%d %H:%M UTC")
            raise Unauthorized(f"account locked after repeated failures, try again after {until}")
        reason = None
        if not verify_password(user.password_hash, password):
            reason = "bad password"
        elif user.totp_secret and not otp:
            reason = "one-time code missing"
        elif user.totp_secret and not verify_totp(user.totp_secret, otp, now):
            reason = "bad one-time code"
        elif not user.active:
            reason = "inactive"
        if reason is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            details: dict[str, Any] = {
                "reason": reason,
                "step": step,
                "failed_logins": user.failed_logins,
            }
            if user.failed_logins >= self._settings.lockout_threshold:
                user.locked_until = now + timedelta(minutes=self._settings.lockout_minutes)
                user.failed_logins = 0
                details["locked_until"] = user.locked_until.isoformat()
                await self._audit(s, login, "web.account_locked", f"user:{login}", **details)
            else:
                await self._audit(s, login, "web.login_failed", f"user:{login}", **details)
            await s.commit()
            if reason == "one-time code missing":
                raise Unauthorized("a one-time code is required for this account")
            if reason == "bad one-time code":
                raise Unauthorized("invalid one-time code")
            raise Unauthorized(_BAD_CREDENTIALS)
        user.failed_logins = 0
        user.locked_until = None
        return user

    async def login(self, login: str, password: str, otp: str = "") -> LoginOutcome:
        """First step of a login; raises :class:`Unauthorized` with the reason to show."""
        login = login.strip()
        async with self._db.session() as s:
            user = await self._check_credentials(s, login, password, otp, step="first")
            if user.four_eyes or self._settings.four_eyes_default:
                token = new_token()
                s.add(
                    PendingLogin(
                        token_hash=hash_token(token),
                        login=user.login,
                        created_at=self._now(),
                        used=False,
                    )
                )
                await self._audit(
                    s, user.login, "web.login_pending_second_person", f"user:{user.login}"
                )
                await s.commit()
                return LoginOutcome("second_person", token, user.login)
            outcome = await self._open_session(s, user, second=None)
            await s.commit()
            return outcome

    async def pending_login(self, token: str) -> str | None:
        """The login waiting for a second person behind ``token``, if still valid."""
        async with self._db.session() as s:
            pending = await self._find_pending(s, token)
            return pending.login if pending else None

    async def _find_pending(self, s: AsyncSession, token: str) -> PendingLogin | None:
        if not token:
            return None
        pending = (
            await s.execute(
                select(PendingLogin).where(PendingLogin.token_hash == hash_token(token))
            )
        ).scalar_one_or_none()
        if pending is None or pending.used:
            return None
        age = (self._now() - as_utc(pending.created_at)).total_seconds()
        if age > self._settings.four_eyes_window:
            return None
        return pending

    async def confirm_second_person(
        self, token: str, login: str, password: str, otp: str = ""
    ) -> LoginOutcome:
        """Second step of a four-eyes login: another account confirms."""
        login = login.strip()
        async with self._db.session() as s:
            pending = await self._find_pending(s, token)
            if pending is None:
                raise Unauthorized("the login waiting for a second person has expired; start again")
            if login == pending.login:
                await self._audit(
                    s,
                    login,
                    "web.login_failed",
                    f"user:{pending.login}",
                    reason="second person is the same account",
                    step="second",
                )
                await s.commit()
                raise Unauthorized("the second person must use a different account")
            second = await self._check_credentials(s, login, password, otp, step="second")
            first = (
                await s.execute(select(User).where(User.login == pending.login))
            ).scalar_one_or_none()
            if first is None or not first.active:
                raise Unauthorized(_BAD_CREDENTIALS)
            pending.used = True
            await self._audit(s, second.login, "web.four_eyes_confirmed", f"user:{first.login}")
            outcome = await self._open_session(s, first, second=second.login)
            await s.commit()
            return outcome

    async def _open_session(
        self, s: AsyncSession, user: User, *, second: str | None
    ) -> LoginOutcome:
        token, csrf = new_token(), new_token()
        now = self._now()
        s.add(
            WebSession(
                token_hash=hash_token(token),
                login=user.login,
                csrf_token=csrf,
                created_at=now,
                last_seen=now,
                second_login=second,
                ended=False,
            )
        )
        details: dict[str, Any] = {"must_change_password": bool(user.must_change_password)}
        if second:
            details["second_person"] = second
        await self._audit(s, user.login, "web.login", f"user:{user.login}", **details)
        return LoginOutcome("session", token, user.login, bool(user.must_change_password), csrf)

    async def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a session cookie, or None when absent, ended or expired."""
        if not token:
            return None
        now = self._now()
        async with self._db.session() as s:
            ws = (
                await s.execute(
                    select(WebSession).where(WebSession.token_hash == hash_token(token))
                )
            ).scalar_one_or_none()
            if ws is None or ws.ended:
                return None
            if (now - as_utc(ws.last_seen)).total_seconds() > self._settings.session_ttl:
                ws.ended = True
                await s.commit()
                return None
            user = (
                await s.execute(select(User).where(User.login == ws.login))
            ).scalar_one_or_none()
            if user is None or not user.active:
                ws.ended = True
                await s.commit()
                return None
            if (now - as_utc(ws.last_seen)).total_seconds() > 30:
                ws.last_seen = now
                await s.commit()
            return Principal(
                user.login,
                user.name or user.login,
                user.role,
                bool(user.must_change_password),
                ws.csrf_token,
                ws.id,
            )

    async def logout(self, principal: Principal) -> None:
        """End the session of ``principal``."""
        async with self._db.session() as s:
            await s.execute(
                update(WebSession).where(WebSession.id == principal.session_id).values(ended=True)
            )
            await self._audit(s, principal.login, "web.logout", f"user:{principal.login}")
            await s.commit()

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change the password of ``principal`` (the current one must be given)."""
        async with self._db.session() as s:
            user = (
                await s.execute(select(User).where(User.login == principal.login))
            ).scalar_one_or_none()
            if user is None:
                raise Forbidden("no such account")
            if not verify_password(user.password_hash, current):
                await self._audit(
                    s,
                    user.login,
                    "web.password_change_failed",
                    f"user:{user.login}",
                    reason="bad current password",
                )
                await s.commit()
                raise BadRequest("the current password is wrong")
            problem = check_password_strength(new, login=user.login)
            if problem is None and verify_password(user.password_hash, new):
                problem = "the new password must differ from the current one"
            if problem is not None:
                raise BadRequest(problem)
            user.password_hash = hash_password(new)
            user.must_change_password = False
            await self._audit(s, user.login, "web.password_changed", f"user:{user.login}")
            await s.commit()
