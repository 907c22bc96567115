"""Account administration shared by ``siprec-recorder users`` and the tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import User

from .auth import ROLES, end_sessions, remember_password
from .errors import BadRequest, Conflict, NotFound
from .models import LoginFailure
from .security import check_password_strength, hash_password, new_totp_secret

__all__ = ["UserChange", "add_user", "list_users", "set_user", "temporary_password"]


def temporary_password() -> str:
    """A random first password (the user must change it at first login)."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class UserChange:
    """What ``users set`` may change; None leaves a field as it is."""

    name: str | None = None
    role: str | None = None
    password: str | None = None
    active: bool | None = None
    four_eyes: bool | None = None
    totp: bool | None = None  # True: new secret; False: remove
    unlock: bool = False
    must_change_password: bool | None = None


def _user_json(u: User) -> dict[str, Any]:
    return {
        "login": u.login,
        "name": u.name or "",
        "role": u.role,
        "active": u.active,
        "four_eyes": u.four_eyes,
        "totp": bool(u.totp_secret),
        "must_change_password": u.must_change_password,
        "locked_until": u.locked_until.isoformat() if u.locked_until else None,
        "created_at": u.created_at.isoformat() if u.created_at else None,
    }


async def add_user(
    db: Database,
    *,
    actor: str,
    login: str,
    name: str = "",
    role: str = "standard",
    password: str | None = None,
    four_eyes: bool = False,
    totp: bool = False,
    must_change_password: bool = True,
) -> tuple[dict[str, Any], str, str | None]:
    """Create an account; returns (user, first password, TOTP secret or None)."""
    login = login.strip()
    if not login or len(login) > 255 or any(c.isspace() for c in login):
        raise BadRequest("a login has 1 to 255 characters and no spaces")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    password = password or temporary_password()
    problem = check_password_strength(password, login=login)
    if problem:
        raise BadRequest(problem)
    secret = new_totp_secret() if totp else None
    async with db.session() as s:
        if await s.scalar(select(User.id).where(User.login == login)) is not None:
            raise Conflict(f"user {login!r} already exists")
        user = User(
            login=login,
            name=name or login,
            role=role,
            password_hash=hash_password(password),
            must_change_password=must_change_password,
            active=True,
            failed_logins=0,
            totp_secret=secret,
            four_eyes=four_eyes,
        )
        s.add(user)
        await s.flush()
        await append_event(
            s,
            actor=actor,
            action="web.user_added",
            subject=f"user:{login}",
            details={"role": role, "four_eyes": four_eyes, "totp": totp},
        )
        await s.commit()
        return _user_json(user), password, secret


async def set_user(
    db: Database, *, actor: str, login: str, change: UserChange
) -> tuple[dict[str, Any], str | None]:
    """Change an account; returns (user, new TOTP secret or None)."""
    secret = None
    async with db.session() as s:
        user = (await s.execute(select(User).where(User.login == login))).scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user {login!r}")
        before = _user_json(user)
        if change.name is not None:
            user.name = change.name
        if change.role is not None:
            if change.role not in ROLES:
                raise BadRequest(f"role must be one of {', '.join(ROLES)}")
            user.role = change.role
        if change.password is not None:
            problem = check_password_strength(change.password, login=login)
            if problem:
                raise BadRequest(problem)
            await remember_password(s, login, user.password_hash, datetime.now(UTC))
            user.password_hash = hash_password(change.password)
            user.must_change_password = True
            await end_sessions(s, login)
        if change.must_change_password is not None:
            user.must_change_password = change.must_change_password
        if change.active is not None:
            user.active = change.active
            if not change.active:
                await end_sessions(s, login)
        if change.four_eyes is not None:
            user.four_eyes = change.four_eyes
        if change.totp is True:
            secret = user.totp_secret = new_totp_secret()
        elif change.totp is False:
            user.totp_secret = None
        if change.unlock:
            user.locked_until = None
            user.failed_logins = 0
            await s.execute(delete(LoginFailure).where(LoginFailure.login == login))
        after = _user_json(user)
        await append_event(
            s,
            actor=actor,
            action="web.user_changed",
            subject=f"user:{login}",
            details={
                "before": before,
                "after": after,
                "password_reset": change.password is not None,
            },
        )
        await s.commit()
        return after, secret


async def list_users(db: Database) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = await s.execute(select(User).order_by(User.login))
        return [_user_json(u) for u in rows.scalars()]
