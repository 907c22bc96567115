"""Accounts: login (argon2, lockout, TOTP, four-eyes), sessions and password changes.

Theory of operation
-------------------
``login`` checks the password (and the TOTP code when the account has a secret); a login
unknown locally goes to the directory (LDAP) when one is configured, and local accounts
keep working beside it (break-glass). Every failure is a row in ``web_login_failures``
(login typed, source address). A source with too many recent failures is throttled for
every login; a login with too many recent failures from one source is throttled *for that
source only*, so nobody can keep an administrator out by failing on purpose. Unknown,
wrong, inactive and throttled logins get one answer after the same work and a common
minimum time. A success either opens a session or, for a four-eyes account, creates a
pending login whose token the browser carries to the second step, where a *different*,
active account of a role allowed to confirm enters its own credentials (and code) before
the session of the first is opened. A session whose account must change its password may
do nothing else until it has; a password change ends every other session of the account
and may not reuse the last passwords.

Sessions are rows in ``web_sessions`` keyed by the SHA-256 of the cookie value; each has its
own CSRF token. They end after ``session_ttl`` seconds without use, on logout, and when the
account is deactivated. Every outcome is written to the ledger.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import User

from .errors import BadRequest, Forbidden, Unauthorized
from .models import LoginFailure, PasswordHistory, PendingLogin, WebSession
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

__all__ = [
    "ROLES",
    "AuthService",
    "LoginOutcome",
    "Principal",
    "end_sessions",
    "remember_password",
]

ROLES: tuple[str, ...] = ("standard", "admin", "auditor")
# One answer for an unknown login, a wrong password, an inactive account and a throttled
# source: telling them apart would tell who has an account.
_BAD_CREDENTIALS = "invalid login or password, or too many attempts: wait a few minutes"
PASSWORD_HISTORY = 5  # the current password and the four before it may not be chosen


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

    async def _blocked(self, s: AsyncSession, login: str, source: str) -> str | None:
        """Why a login from ``source`` must wait now, or None. Failures count per source
        and per (login, source): an attacker can slow down only their own address, never
        keep an account out for somebody else."""
        since = self._now() - timedelta(minutes=self._settings.lockout_minutes)
        recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.at >= since)
        by_source = int(await s.scalar(recent.where(LoginFailure.source == source)) or 0)
        if by_source >= self._settings.source_threshold:
            return "source throttled"
        by_login = int(
            await s.scalar(
                recent.where(LoginFailure.source == source, LoginFailure.login == login[:100])
            )
            or 0
        )
        if by_login >= self._settings.lockout_threshold:
            return "login throttled for this source"
        return None

    async def _fail(
        self, s: AsyncSession, login: str, source: str, reason: str, step: str, *, count: bool
    ) -> None:
        if count:
            s.add(LoginFailure(login=login[:100], source=source[:64], at=self._now()))
        action = "web.login_throttled" if "throttled" in reason else "web.login_failed"
        await self._audit(
            s,
            login[:255] or "-",
            action,
            f"user:{login[:255]}",
            reason=reason,
            step=step,
            source=source,
        )
        await s.commit()

    async def _check_credentials(
        self, s: AsyncSession, login: str, password: str, otp: str, *, step: str, source: str
    ) -> User:
        """The active user whose credentials these are. Unknown login, wrong password,
        inactive account and a throttled source all get the same answer after the same
        work (one password hash), so none of them tells whether the account exists."""
        now = self._now()
        blocked = await self._blocked(s, login, source)
        user = (await s.execute(select(User).where(User.login == login))).scalar_one_or_none()
        if user is not None and not user.password_hash and self._settings.ldap is not None:
            user = None  # a directory account: the directory checks its password
        directory_user = None
        if blocked is None and user is None and self._settings.ldap is not None:
            directory_user = await self._directory(s, login, password)
            user = directory_user
        if user is None or directory_user is not None:
            verify_password(None, password)  # the cost of a real check
            ok = directory_user is not None
        else:
            ok = verify_password(user.password_hash, password)
        reason = None
        if blocked is not None:
            reason = blocked
        elif user is None:
            reason = "unknown login"
        elif not ok:
            reason = "bad password"
        elif not user.active:
            reason = "inactive"
        elif user.totp_secret and not otp:
            reason = "one-time code missing"
        elif user.totp_secret and not verify_totp(user.totp_secret, otp, now):
            reason = "bad one-time code"
        if reason is not None:
            await self._fail(s, login, source, reason, step, count=blocked is None)
            if reason == "one-time code missing":
                raise Unauthorized("a one-time code is required for this account")
            if reason == "bad one-time code":
                raise Unauthorized("invalid one-time code")
            raise Unauthorized(_BAD_CREDENTIALS)
        assert user is not None
        user.failed_logins = 0
        user.locked_until = None
        return user

    async def _directory(self, s: AsyncSession, login: str, password: str) -> User | None:
        """The local row of a directory user after a successful bind (created or updated
        with the role its groups give; it has no local password)."""
        from .directory import DirectoryUnavailable, directory_login

        try:
            found = await asyncio.to_thread(directory_login, self._settings.ldap, login, password)
        except DirectoryUnavailable as exc:
            await self._audit(s, "-", "web.directory_unavailable", "directory", error=str(exc))
            return None
        if found is None:
            return None
        user = (await s.execute(select(User).where(User.login == login))).scalar_one_or_none()
        if user is None:
            user = User(
                login=login,
                name=found.name,
                role=found.role,
                password_hash=None,
                must_change_password=False,
                active=True,
                failed_logins=0,
                four_eyes=False,
            )
            s.add(user)
            await s.flush()
            await self._audit(
                s, "directory", "web.user_added", f"user:{login}", role=found.role, dn=found.dn
            )
        elif user.role != found.role or user.name != found.name:
            await self._audit(
                s,
                "directory",
                "web.user_changed",
                f"user:{login}",
                before={"role": user.role, "name": user.name},
                after={"role": found.role, "name": found.name},
            )
            user.role, user.name = found.role, found.name
        return user

    async def _uniform_delay(self, started: float) -> None:
        left = self._settings.login_floor_seconds - (time.monotonic() - started)
        if left > 0:
            await asyncio.sleep(left)

    async def login(
        self, login: str, password: str, otp: str = "", *, source: str = "-"
    ) -> LoginOutcome:
        """First step of a login; raises :class:`Unauthorized` with the reason to show."""
        started = time.monotonic()
        try:
            return await self._login(login.strip(), password, otp, source)
        finally:
            await self._uniform_delay(started)

    async def _login(self, login: str, password: str, otp: str, source: str) -> LoginOutcome:
        async with self._db.session() as s:
            user = await self._check_credentials(
                s, login, password, otp, step="first", source=source
            )
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
        self, token: str, login: str, password: str, otp: str = "", *, source: str = "-"
    ) -> LoginOutcome:
        """Second step of a four-eyes login: another account, of a role allowed to confirm,
        enters its own credentials."""
        started = time.monotonic()
        try:
            return await self._confirm(token, login.strip(), password, otp, source)
        finally:
            await self._uniform_delay(started)

    async def _confirm(
        self, token: str, login: str, password: str, otp: str, source: str
    ) -> LoginOutcome:
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
            second = await self._check_credentials(
                s, login, password, otp, step="second", source=source
            )
            allowed = self._settings.four_eyes_roles
            if second.role not in allowed:
                await self._audit(
                    s,
                    login,
                    "web.login_failed",
                    f"user:{pending.login}",
                    reason=f"second person's role {second.role} may not confirm",
                    step="second",
                )
                await s.commit()
                raise Unauthorized(
                    "the second person must be an account of role " + " or ".join(allowed)
                )
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
            if problem is None and await self._recently_used(s, user, new):
                problem = (
                    f"the new password must differ from your last {PASSWORD_HISTORY} passwords"
                )
            if problem is not None:
                raise BadRequest(problem)
            await remember_password(s, user.login, user.password_hash, self._now())
            user.password_hash = hash_password(new)
            user.must_change_password = False
            ended = await end_sessions(s, user.login, keep=principal.session_id)
            await self._audit(
                s, user.login, "web.password_changed", f"user:{user.login}", sessions_ended=ended
            )
            await s.commit()

    async def _recently_used(self, s: AsyncSession, user: User, new: str) -> bool:
        if verify_password(user.password_hash, new):
            return True
        rows = await s.execute(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.login == user.login)
            .order_by(PasswordHistory.id.desc())
            .limit(PASSWORD_HISTORY - 1)
        )
        return any(verify_password(h, new) for h in rows.scalars())


async def remember_password(
    s: AsyncSession, login: str, password_hash: str | None, now: datetime
) -> None:
    """Keep ``password_hash`` in the account's history (the last few are refused)."""
    if password_hash:
        s.add(PasswordHistory(login=login, password_hash=password_hash, created_at=now))


async def end_sessions(s: AsyncSession, login: str, *, keep: int | None = None) -> int:
    """End every open session of ``login`` except ``keep``; how many were ended."""
    q = update(WebSession).where(WebSession.login == login, WebSession.ended.is_(False))
    if keep is not None:
        q = q.where(WebSession.id != keep)
    result = await s.execute(q.values(ended=True))
    return int(getattr(result, "rowcount", 0) or 0)
