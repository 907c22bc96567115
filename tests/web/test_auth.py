"""Accounts: first password change, lockout, TOTP, four-eyes, CSRF, sessions, audit."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from sqlalchemy import select

from siprec_recorder.services.users import UserChange, add_user, set_user
from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry

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
    assert r.json()["detail"] == "the new password must differ from your last 5 passwords"
    for common in ("1234567890", "password12", "Password2024!", "qwertyuiop"):
        r = await c.post("/api/auth/password", json={"current": "first-password-1", "new": common})
        assert r.status_code == 400, common
        assert "list of common or breached passwords" in r.json()["detail"]
    r = await c.post(
        "/api/auth/password", json={"current": "first-password-1", "new": "a much better one"}
    )
    assert r.status_code == 200
    assert (await c.get("/api/recordings")).status_code == 200
    assert "web.password_changed" in await _actions(world, "user:newbie")
    # the first password cannot come back, not even after another change
    r = await c.post(
        "/api/auth/password", json={"current": "a much better one", "new": "first-password-1"}
    )
    assert r.status_code == 400
    assert "last 5 passwords" in r.json()["detail"]
    r = await c.post(
        "/api/auth/password", json={"current": "a much better one", "new": "yet another phrase"}
    )
    assert r.status_code == 200
    r = await c.post(
        "/api/auth/password", json={"current": "yet another phrase", "new": "first-password-1"}
    )
    assert r.status_code == 400


async def test_password_change_ends_the_other_sessions(client_factory):
    a, b, api = client_factory(), client_factory(), client_factory()
    await login(a, "bob")
    await login(b, "bob")
    token = (await api.post("/api/auth/login", json={"login": "bob", "password": PASSWORD})).json()
    api.headers["Authorization"] = f"Bearer {token['token']}"
    assert (await api.get("/api/auth/me")).status_code == 200
    r = await a.post("/api/auth/password", json={"current": PASSWORD, "new": "a fresh new phrase"})
    assert r.status_code == 200
    assert (await a.get("/api/auth/me")).status_code == 200  # the session that changed it
    assert (await b.get("/api/auth/me")).status_code == 401
    assert (await api.get("/api/auth/me")).status_code == 401


BAD = "invalid login or password, or too many attempts: wait a few minutes"


async def test_failures_throttle_that_source_only(client_factory, world, clock):
    attacker, owner = client_factory("192.0.2.66"), client_factory("198.51.100.7")
    for _ in range(3):
        r = await attacker.post("/api/auth/login", json={"login": "alice", "password": "wrong"})
        assert r.status_code == 401
        assert r.json()["detail"] == BAD
    # the right password from the attacking source is refused with the same answer ...
    r = await attacker.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["detail"] == BAD
    # ... but the admin, elsewhere, is not kept out
    await login(owner, "alice")
    assert "web.login_throttled" in await _actions(world, "user:alice")
    clock.now += timedelta(minutes=11)
    await login(attacker, "alice")


async def test_a_source_failing_on_many_logins_is_throttled(client_factory, clock):
    spray = client_factory("192.0.2.99")
    for who in ("nobody", "x1", "x2", "bob", "carol", "adam"):  # unknown logins count too
        r = await spray.post("/api/auth/login", json={"login": who, "password": "wrong guess"})
        assert r.status_code == 401
    r = await spray.post("/api/auth/login", json={"login": "audrey", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["detail"] == BAD
    await login(client_factory("192.0.2.100"), "audrey")
    clock.now += timedelta(minutes=11)
    await login(spray, "audrey")


async def test_unknown_wrong_and_throttled_logins_look_the_same(client_factory, settings):
    import time

    c = client_factory("192.0.2.5")
    answers = []
    for body in (
        {"login": "nobody", "password": "whatever"},
        {"login": "bob", "password": "wrong"},
        {"login": "bob", "password": "wrong"},
        {"login": "bob", "password": "wrong"},
        {"login": "bob", "password": PASSWORD},  # throttled now (3 failures from here)
    ):
        t0 = time.monotonic()
        r = await c.post("/api/auth/login", json=body)
        elapsed = time.monotonic() - t0
        assert elapsed >= settings.login_floor_seconds
        answers.append((r.status_code, r.json(), sorted(r.headers.keys())))
    assert all(a == answers[0] for a in answers), answers


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
        json={"pending_token": token, "login": "adam", "password": "wrong"},
    )
    assert r.status_code == 401
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "carol", "password": PASSWORD},
    )
    assert r.status_code == 401  # a standard user may not confirm
    assert r.json()["detail"] == "the second person must be an account of role admin"
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "adam", "password": PASSWORD},
    )
    assert r.status_code == 200
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    me = (await c.get("/api/auth/me")).json()
    assert me["login"] == "bob"
    # the pending token is used up
    r = await c.post(
        "/api/auth/second-person",
        json={"pending_token": token, "login": "adam", "password": PASSWORD},
    )
    assert r.status_code == 401
    assert "web.four_eyes_confirmed" in await _actions(world, "user:bob")


async def test_standard_user_cannot_confirm_an_admins_four_eyes_login(client_factory, world):
    await set_user(world.db, actor="test", login="alice", change=UserChange(four_eyes=True))
    c = client_factory()
    token = (await c.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})).json()[
        "pending_token"
    ]
    for who in ("bob", "audrey"):
        r = await c.post(
            "/api/auth/second-person",
            json={"pending_token": token, "login": who, "password": PASSWORD},
        )
        assert r.status_code == 401 and "must be an account of role admin" in r.json()["detail"]
    assert (await c.get("/api/auth/me")).status_code == 401


async def test_login_form_refuses_cross_site_posts(client_factory):
    c = client_factory()
    form = {"login": "alice", "password": PASSWORD}
    r = await c.post("/login", data=form)  # what a foreign page (or file://) can send
    assert (
        r.status_code == 403
        and "set-cookie" not in r.headers
        or "siprec_session" not in (r.headers.get("set-cookie", ""))
    )
    assert "the login form expired" in r.text
    page = await c.get("/login")
    token = page.text.split('name="login_csrf" value="')[1].split('"')[0]
    fresh = client_factory()  # has the token from somewhere, but not the cookie
    r = await fresh.post("/login", data={**form, "login_csrf": token})
    assert r.status_code == 403
    r = await c.post("/login", data={**form, "login_csrf": token})
    assert r.status_code == 303 and "siprec_session=" in r.headers["set-cookie"]
    # the JSON login takes JSON only (a form cannot send it cross-site without CORS)
    r = await fresh.post(
        "/api/auth/login",
        content=b'{"login": "alice", "password": "correct horse battery"}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 422


async def test_nothing_but_static_files_may_be_cached(client_factory):
    c = client_factory()
    await login(c, "alice")
    for path in ("/", "/login", "/api/recordings", "/api/auth/me", "/cases", "/nope"):
        r = await c.get(path)
        assert r.headers["cache-control"] == "no-store", path
    assert "no-store" not in (await c.get("/static/style.css")).headers.get("cache-control", "")


async def test_banners_come_only_from_the_servers_table(client_factory):
    c = client_factory()
    await login(c, "alice")
    page = (await c.get("/", params={"msg": "Your account is suspended, call +1 555"})).text
    assert "suspended" not in page and 'class="flash"' not in page
    page = (await c.get("/", params={"msg": "label-added"})).text
    assert '<p class="flash" role="status">label added</p>' in page
    page = (await c.get("/requests", params={"msg": "request-approved", "n": "x<b>"})).text
    assert 'class="flash"' not in page


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
