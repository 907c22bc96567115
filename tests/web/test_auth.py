"""Accounts: first password change, lockout, TOTP, four-eyes, CSRF, sessions, audit."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from sqlalchemy import select

from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry
from siprec_recorder.web.users import UserChange, add_user, set_user

from .conftest import login
from .fixtures import PASSWORD


async def _actions(world, subject_like: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    async with world.db.session() as s:
        rows = await s.execute(select(LedgerEntry).order_by(LedgerEntry.seq))
        return [e.action for e in rows.scalars() if subject_like in e.subject]


async def test_first_login_forces_password_change(client_factory, world):
    await add_user(world.db, actor="test", login="newbie", password="first-password-1")
    c = client_factory()
    body = await login(c, "newbie", "first-password-1")
    assert body["must_change_password"] is True
    r = await c.get("/api/recordings")
    assert r.status_code == 403
    assert r.json()["detail"] == "change your password first"
    r = await c.post("/api/auth/password", json={"current": "first-password-1", "new": "short"})
    assert r.status_code == 400
    assert "at least 10 characters" in r.json()["detail"]
    r = await c.post(
        "/api/auth/password", json={"current": "first-password-1", "new": "first-password-1"}
    )
    assert r.json()["detail"] == "the new password must differ from the current one"
    r = await c.post(
        "/api/auth/password", json={"current": "first-password-1", "new": "a much better one"}
    )
    assert r.status_code == 200
    assert (await c.get("/api/recordings")).status_code == 200
    assert "web.password_changed" in await _actions(world, "user:newbie")


async def test_bad_passwords_lock_the_account(client_factory, world, clock):
    c = client_factory()
    for _ in range(3):
        r = await c.post("/api/auth/login", json={"login": "bob", "password": "wrong"})
        assert r.status_code == 401
        assert r.json()["detail"] == "invalid login or password"
    r = await c.post("/api/auth/login", json={"login": "bob", "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["detail"].startswith("account locked after repeated failures")
    clock.now += timedelta(minutes=11)
    await login(c, "bob")
    assert "web.account_locked" in await _actions(world, "user:bob")


async def test_unknown_login_is_refused_like_a_bad_password(client_factory):
    c = client_factory()
    r = await c.post("/api/auth/login", json={"login": "nobody", "password": "whatever"})
    assert r.status_code == 401
    assert r.json()["detail"] == "invalid login or password"


async def test_totp_second_factor(client_factory, world, clock):
    _, secret = await set_user(world.db, actor="test", login="carol", change=UserChange(totp=True))
    assert secret
    c = client_factory()
    r = await c.post("/api/auth/login", json={"login": "carol", "password": PASSWORD})
    assert r.json()["detail"] == "a one-time code is required for this account"
    r = await c.post(
        "/api/auth/login", json={"login": "carol", "password": PASSWORD, "otp": "000000"}
    )
    assert r.status_code == 401
    code = pyotp.TOTP(secret).at(clock.now)
    r = await c.post("/api/auth/login", json={"login": "carol", "password": PASSWORD, "otp": code})
    assert r.status_code == 200


async def test_four_eyes_login_needs_another_account(client_factory, world):
    await set_user(world.db, actor="test", login="bob", change=UserChange(four_eyes=True))
    c = client_factory()
    r = await c.post("/api/auth/login", json={"login": "bob", "password": PASSWORD})
    body = r.json()
    assert body["status"] == "second_person"
    assert "set-cookie" not in r.headers
    assert (await c.get("/api/auth/me")).status_code == 401
    token = body["pending_token"]
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "bob", "password": PASSWORD},
    )
    assert r.status_code == 401
    assert r.json()["detail"] == "the second person must use a different account"
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "carol", "password": "wrong"},
    )
    assert r.status_code == 401
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "carol", "password": PASSWORD},
    )
    assert r.status_code == 200
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    me = (await c.get("/api/auth/me")).json()
    assert me["login"] == "bob"
    # the pending token is used up
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "carol", "password": PASSWORD},
    )
    assert r.status_code == 401
    assert "web.four_eyes_confirmed" in await _actions(world, "user:bob")


async def test_cookie_flags_and_csrf(client_factory):
    c = client_factory()
    r = await c.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    r = await c.post("/api/labels", json={"title": "x", "colour": "#112233"})
    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]
    c.headers["X-CSRF-Token"] = "forged"
    assert (
        await c.post("/api/labels", json={"title": "x", "colour": "#112233"})
    ).status_code == 403


async def test_bearer_token_needs_no_csrf(client_factory):
    c = client_factory()
    token = (await c.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})).json()[
        "token"
    ]
    api = client_factory()
    api.headers["Authorization"] = f"Bearer {token}"
    r = await api.post("/api/labels", json={"title": "Bearer", "colour": "#112233"})
    assert r.status_code == 201


async def test_logout_and_session_expiry(client_factory, clock):
    c = client_factory()
    await login(c, "alice")
    assert (await c.post("/api/auth/logout")).status_code == 200
    assert (await c.get("/api/auth/me")).status_code == 401
    c2 = client_factory()
    await login(c2, "alice")
    clock.now += timedelta(hours=9)
    assert (await c2.get("/api/auth/me")).status_code == 401


async def test_deactivated_user_loses_session(client_factory, world):
    c = client_factory()
    await login(c, "bob")
    await set_user(world.db, actor="test", login="bob", change=UserChange(active=False))
    assert (await c.get("/api/auth/me")).status_code == 401


async def test_every_action_is_in_a_valid_chain(client_factory, world):
    c = client_factory()
    await login(c, "alice")
    await c.get("/api/recordings")
    await c.get(f"/api/recordings/{world.recordings['bob1']}")
    actions = await _actions(world)
    assert {"web.login", "web.search", "web.recording_viewed"} <= set(actions)
    async with world.db.session() as s:
        assert await verify_chain(s) == []


async def test_four_eyes_for_everyone_setting(world, settings, policy):  # type: ignore[no-untyped-def]
    import dataclasses

    import httpx

    from siprec_recorder.web.app import create_app

    app = create_app(
        world.db, world.layout, dataclasses.replace(settings, four_eyes_default=True), policy
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as c:
        r = await c.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})
        assert r.json()["status"] == "second_person"
