"""Server-rendered pages over HTTP: redirects, CSRF on forms, escaping, security headers."""

from __future__ import annotations

import re

from .fixtures import PASSWORD


async def login_form_token(c) -> str:  # type: ignore[no-untyped-def]
    """The login form's CSRF token (its cookie stays in the client)."""
    page = await c.get("/login")
    return page.text.split('name="login_csrf" value="')[1].split('"')[0]


async def _page_login(c, who: str) -> str:  # type: ignore[no-untyped-def]
    r = await c.post(
        "/login",
        data={"login": who, "password": PASSWORD, "login_csrf": await login_form_token(c)},
    )
    assert r.status_code == 303, r.text
    page = await c.get("/")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


async def test_pages_need_a_login(client_factory):
    c = client_factory()
    for path in ("/", "/cases", "/requests", "/audit", "/numbers"):
        r = await c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    r = await c.get("/login")
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_bad_login_shows_the_reason(client_factory):
    c = client_factory()
    r = await c.post(
        "/login",
        data={"login": "alice", "password": "nope", "login_csrf": await login_form_token(c)},
    )
    assert r.status_code == 401
    assert "invalid login or password" in r.text


async def test_forms_need_the_csrf_token(client_factory):
    c = client_factory()
    token = await _page_login(c, "alice")
    data = {"title": "T", "label_choice": "new", "label_title": "L1", "label_colour": "#123456"}
    r = await c.post("/cases", data=data)
    assert r.status_code == 403
    assert "CSRF" in r.text
    r = await c.post("/cases", data={**data, "csrf_token": token})
    assert r.status_code == 303
    assert re.match(r"/cases/\d+\?msg=", r.headers["location"])


async def test_user_text_is_escaped(client_factory):
    c = client_factory()
    token = await _page_login(c, "alice")
    r = await c.post(
        "/cases",
        data={
            "title": "<script>alert(1)</script>",
            "label_choice": "new",
            "label_title": "X<b>",
            "label_colour": "#123456",
            "csrf_token": token,
        },
    )
    page = await c.get(r.headers["location"])
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_search_page_shows_counts_and_keeps_filters(client_factory):
    c = client_factory()
    await _page_login(c, "alice")
    r = await c.get("/", params={"direction": "out", "sort": "duration", "order": "asc"})
    assert r.status_code == 200
    assert "2 recordings" in r.text
    assert "direction=out" in r.text  # sort links keep the filters
    r = await c.get("/", params={"min_duration": "abc"})
    assert r.status_code == 400
    assert "min. duration: not a number" in r.text


async def test_standard_user_gets_403_page(client_factory, world):
    c = client_factory()
    await _page_login(c, "bob")
    r = await c.get(f"/recordings/{world.recordings['carol1']}")
    assert r.status_code == 403
    assert "you may not see this recording" in r.text
    r = await c.get("/requests/all")
    assert r.status_code == 403


async def test_must_change_password_redirects_pages(client_factory, world):
    from siprec_recorder.services.users import add_user

    await add_user(world.db, actor="t", login="fresh", password="first-password-1")
    c = client_factory()
    r = await c.post(
        "/login",
        data={
            "login": "fresh",
            "password": "first-password-1",
            "login_csrf": await login_form_token(c),
        },
    )
    assert r.headers["location"] == "/password"
    r = await c.get("/cases")
    assert r.status_code == 303 and r.headers["location"] == "/password"
