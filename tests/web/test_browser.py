"""End-to-end: the portal in a real headless Chromium (Debian ``chromium``, Playwright).

One real ``siprec-recorder serve`` process (portal on 127.0.0.1:0) serves every test of
this module; each test gets a
fresh browser context, so cookies never leak between users. Screenshots of the search, case,
request and schedule pages are written to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.services.users import add_user

from .fixtures import BOB_NUMBER, FAR_END, PASSWORD
from .live import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, live: LiveServer) -> Iterator[Any]:
    contexts: list[Any] = []

    def make() -> Any:
        ctx = browser.new_context(base_url=live.url, viewport={"width": 1366, "height": 900})
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def log_in(page: Any, login: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_first_login_forces_password_change(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    db = live.world.db
    live.call(
        lambda: add_user(
            db, actor="test", login="newbie", name="New Bie", password="first-password-1"
        )
    )
    page = new_page()
    log_in(page, "newbie", "first-password-1")
    page.wait_for_url("**/password")
    assert "choose a new password" in page.content()
    page.goto("/")
    page.wait_for_url("**/password")  # nothing else until the password is changed
    page.fill("input[name=current]", "first-password-1")
    page.fill("input[name=new]", "my own new secret")
    page.fill("input[name=confirm]", "my own new secret")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/\?msg="))
    assert "password changed" in page.text_content(".flash")
    assert page.is_visible("#search-form")


def test_four_eyes_login(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    db = live.world.db
    live.call(
        lambda: add_user(
            db,
            actor="test",
            login="fred",
            name="Fred",
            role="admin",
            password=PASSWORD,
            must_change_password=False,
            four_eyes=True,
        )
    )
    page = new_page()
    log_in(page, "fred")
    page.wait_for_url("**/login/second")
    assert "needs a second person" in page.text_content("main")
    # fred is not in yet
    assert page.request.get("/api/auth/me").status == 401
    page.fill("input[name=login]", "fred")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    assert "the second person must use a different account" in page.text_content(".error")
    # a standard user cannot confirm an admin's login
    page.fill("input[name=login]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    assert "must be an account of role admin" in page.text_content(".error")
    assert page.request.get("/api/auth/me").status == 401
    page.fill("input[name=login]", "adam")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(live.url + "/")
    assert "(fred, admin)" in page.text_content("header")


def test_standard_user_sees_only_own_calls(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    recs = live.world.recordings
    page = new_page()
    log_in(page, "bob")
    page.wait_for_url(live.url + "/")
    assert page.text_content("#result-count").startswith("2 recordings")
    numbers = page.locator("table.results tbody tr td:nth-child(4)").all_text_contents()
    assert set(numbers) == {BOB_NUMBER}
    resp = page.goto(f"/recordings/{recs['carol1']}")
    assert resp is not None and resp.status == 403
    assert "you may not see this recording" in page.text_content(".error")
    assert page.request.get(f"/api/recordings/{recs['carol1']}/audio").status == 403
    page.goto(f"/recordings/{recs['bob1']}")
    assert page.locator("audio#player").count() == 1
    assert page.locator("#download").count() == 0
    assert page.request.get(f"/api/recordings/{recs['bob1']}/download").status == 403
    assert page.request.get(f"/api/recordings/{recs['carol1']}/download").status == 403


def _wait_playing(page: Any) -> float:
    """Start the in-page player and wait until audio actually advances; its duration."""
    page.evaluate("() => document.querySelector('audio#player').play()")
    for _ in range(150):  # polled from here: the page's CSP forbids eval-based waits
        if page.evaluate("() => document.querySelector('audio#player').currentTime") > 0.2:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the audio element never played")
    return float(page.evaluate("() => document.querySelector('audio#player').duration"))


def test_admin_searches_plays_and_downloads(
    live: LiveServer, new_page: Any, tmp_path: Path
) -> None:
    assert live.world is not None
    recs = live.world.recordings
    page = new_page()
    log_in(page, "alice")
    page.wait_for_url(live.url + "/")
    assert page.text_content("#result-count").startswith("3 recordings")
    page.fill("input[name=number]", FAR_END)
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**number=*")
    assert page.text_content("#result-count").startswith("2 recordings")
    page.goto("/")
    page.click("th a:has-text('Duration')")
    page.wait_for_url("**sort=duration*")
    page.goto(f"/recordings/{recs['bob2']}")
    duration = _wait_playing(page)
    assert 11.0 < duration < 13.5
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / "dl.mp3"
    info.value.save_as(target)
    assert (
        live.world.layout.root.joinpath(
            next(p for p in live.world.layout.root.rglob(f"*{recs['bob2']}.mp3"))
        ).read_bytes()
        == target.read_bytes()
    )


def _make_case(page: Any, title: str, label: str, colour: str) -> str:
    page.goto("/cases")
    page.fill("#new-case input[name=title]", title)
    page.check("#new-case input[name=label_choice][value=new]")
    page.fill("#new-case input[name=label_title]", label)
    page.fill("#new-case input[name=label_colour]", colour)
    page.select_option("#new-case select[name=list_access]", "admins")
    page.click("#new-case button[type=submit]")
    page.wait_for_url(re.compile(r"/cases/\d+\?msg="))
    return str(page.url.split("/cases/")[1].split("?")[0])


def test_case_request_approval_revocation_expiry(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    recs = live.world.recordings
    admin = new_page()
    log_in(admin, "alice")
    admin.wait_for_url(live.url + "/")
    case_id = _make_case(admin, "Desk 7 review", "DESK7", "#1f9d55")
    chip = admin.locator("h1 .chip")
    assert chip.text_content() == "DESK7"
    assert chip.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(31, 157, 85)"
    # put carol's call into the case
    admin.goto(f"/recordings/{recs['carol1']}")
    admin.select_option("select[name=label_id]", label="DESK7")
    admin.click("text=Add label")
    admin.wait_for_url("**msg=label*")
    admin.goto(f"/cases/{case_id}")
    assert admin.locator("table.results tbody tr[data-id]").count() == 1
    shot(admin, "case")
    admin.goto("/?sort=start&order=desc")
    assert admin.locator("table.results .chip:has-text('DESK7')").count() == 1
    shot(admin, "search")

    # bob asks for list + play
    bob = new_page()
    log_in(bob, "bob")
    bob.wait_for_url(live.url + "/")
    assert bob.goto(f"/recordings/{recs['carol1']}").status == 403
    bob.goto(f"/cases/{case_id}")  # a case's details are not for those without rights
    assert "Desk 7 review" not in bob.content() and "DESK7" not in bob.content()
    bob.goto("/requests")
    bob.select_option("#request-form select[name=case_id]", value=case_id)
    bob.fill("#request-form textarea[name=reason]", "Review of desk 7 trades, ticket 4711")
    bob.check("#request-form input[value=play]")
    bob.click("#request-form button[type=submit]")
    bob.wait_for_url("**msg=request*")
    assert "pending" in bob.text_content("#mine")

    # alice sees it pending (reason, user, rights, expiry) and approves with a note
    admin.goto("/requests")
    row = admin.locator("#pending tr[data-id]").first
    text = row.text_content() or ""
    assert "bob" in text and "Review of desk 7 trades" in text and "list, play" in text
    shot(admin, "requests")
    row.locator("input[name=note]").fill("approved for the review")
    row.locator("button:has-text('Approve')").click()
    admin.wait_for_url("**msg=request*approved*")

    # bob lists and plays the conversation
    bob.goto(f"/cases/{case_id}")
    assert bob.locator("table.results tbody tr[data-id]").count() == 1
    bob.goto(f"/recordings/{recs['carol1']}")
    assert _wait_playing(bob) > 5
    assert bob.request.get(f"/api/recordings/{recs['carol1']}/download").status == 403

    # alice revokes: 403 right after
    admin.goto("/requests/all")
    admin.on("dialog", lambda d: d.accept())
    rrow = admin.locator("#all-requests tr[data-id]").first
    rrow.locator("button:has-text('Revoke')").click()
    admin.wait_for_url("**msg=request*revoked*")
    assert bob.goto(f"/recordings/{recs['carol1']}").status == 403
    assert bob.request.get(f"/api/recordings/{recs['carol1']}/audio").status == 403
    admin.goto("/requests/all")
    history = admin.locator("#all-requests tr[data-id]").first.text_content() or ""
    assert "requested" in history and "approved" in history and "revoked" in history

    # a new request, approved, then expired
    bob.goto("/requests")
    bob.select_option("#request-form select[name=case_id]", value=case_id)
    bob.fill("#request-form textarea[name=reason]", "second look")
    bob.check("#request-form input[value=play]")
    bob.fill(
        "#request-form input[name=expires_at]",
        (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d"),
    )
    bob.click("#request-form button[type=submit]")
    admin.goto("/requests")
    admin.locator("#pending tr[data-id] button:has-text('Approve')").first.click()
    admin.wait_for_url("**approved*")
    assert bob.goto(f"/recordings/{recs['carol1']}").status == 200
    # time passes: the approved request's expiry is reached
    db = live.world.db

    async def expire() -> None:
        from sqlalchemy import update

        from siprec_recorder.services.models import AccessRequest

        async with db.session() as s:
            await s.execute(
                update(AccessRequest)
                .where(AccessRequest.status == "approved")
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
            await s.commit()

    live.call(expire)
    assert bob.goto(f"/recordings/{recs['carol1']}").status == 403
    bob.goto("/requests")
    assert "expired" in bob.text_content("#mine")


def test_schedule_overlap_rejected_with_policy_message(live: LiveServer, new_page: Any) -> None:
    assert live.policy is not None
    policy = live.policy
    page = new_page()
    log_in(page, "alice")
    page.wait_for_url(live.url + "/")
    page.goto("/templates")
    page.fill("#template-form input[name=name]", "office hours")
    page.fill("#template-form textarea[name=slots]", "mon-fri 08:00-18:00\nsat 09:00-12:00")
    page.click("#template-form button[type=submit]")
    page.wait_for_url("**msg=template*")
    assert "office hours" in page.text_content("#templates")
    page.goto("/numbers")
    page.click(f"text={BOB_NUMBER}")
    page.wait_for_url("**/numbers/*")
    page.check("#schedule-form input[value=slots]")
    page.fill("#schedule-form textarea[name=slots]", "mon-fri 08:00-18:00")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_url("**msg=schedule*")
    assert page.text_content("#current-slots") == "mon-fri 08:00-18:00"
    bad = ["mon-fri 08:00-18:00", "wed 12:00-20:00"]
    page.fill("#schedule-form textarea[name=slots]", "\n".join(bad))
    page.click("#schedule-form button[type=submit]")
    shown = page.text_content(".error")

    async def expected() -> str:
        try:
            await policy.set_schedule(BOB_NUMBER, actor="test", slots=bad)
        except Exception as exc:  # the policy layer's own error
            return str(exc)
        raise AssertionError("the policy layer accepted overlapping slots")

    assert shown == live.call(expected)
    assert page.text_content("#current-slots") == "mon-fri 08:00-18:00"
    shot(page, "schedule")


def test_csv_upload_shows_row_errors(live: LiveServer, new_page: Any, tmp_path: Path) -> None:
    csv = tmp_path / "numbers.csv"
    csv.write_text(
        "number;user;template;managed;status;mode;beep;notify;self_service\n"
        "+32470000020;gina;;no;manual;professional;no;no;no\n"
        "0470 00 00 21;hank;;maybe;manual;professional;no;no;no\n"
        "+32470000022;ivy;;no;manual;sideways;no;no;no\n",
        encoding="utf-8",
    )
    page = new_page()
    log_in(page, "alice")
    page.wait_for_url(live.url + "/")
    page.goto("/numbers")
    page.set_input_files("#import-form input[type=file]", str(csv))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-problems")
    problems = page.locator("#import-problems li").all_text_contents()
    assert any(p.startswith("row 3, managed:") for p in problems), problems
    assert any(p.startswith("row 4, mode:") for p in problems), problems
    assert "import refused, nothing changed" in page.text_content(".error")
    assert "+32470000020" not in page.text_content("#numbers")


def test_standard_user_has_no_admin_pages(live: LiveServer, new_page: Any) -> None:
    page = new_page()
    log_in(page, "carol")
    page.wait_for_url(live.url + "/")
    assert page.goto("/numbers").status == 403
    assert page.goto("/audit").status == 403
    admin = new_page()
    log_in(admin, "audrey")
    admin.wait_for_url(live.url + "/")
    admin.goto("/audit")
    assert "Hash chain verified: intact" in admin.text_content("#chain")
    admin.fill("input[name=action]", "recording_played")
    admin.click("form.filters button[type=submit]")
    assert admin.locator("#audit tbody tr").count() >= 1


def _played(live: LiveServer, rec: str) -> list[dict[str, Any]]:
    import json

    from sqlalchemy import select

    from siprec_recorder.storage.models import LedgerEntry

    assert live.world is not None
    db = live.world.db

    async def rows() -> list[dict[str, Any]]:
        async with db.session() as s:
            found = await s.execute(
                select(LedgerEntry)
                .where(LedgerEntry.subject == f"recording:{rec}")
                .where(LedgerEntry.action == "web.recording_played")
            )
            return [json.loads(e.details or "{}") for e in found.scalars()]

    return live.call(rows)


def test_no_range_spelling_yields_the_whole_file_and_every_answer_is_audited(
    live: LiveServer, new_page: Any
) -> None:
    assert live.world is not None
    rec = live.world.recordings["bob2"]
    size = next(live.world.layout.root.rglob(f"*{rec}.mp3")).stat().st_size
    for who in ("bob", "audrey"):
        page = new_page()
        log_in(page, who)
        page.wait_for_url(live.url + "/")
        for header in (
            None,
            "bytes=0-",
            "bytes=00-",
            "Bytes=0-",
            "bytes=-99999999",
            "items=0-",
            "bytes=0-5,6-",
            f"bytes=0-{size * 10}",
        ):
            before = len(_played(live, rec))
            r = page.request.get(
                f"/api/recordings/{rec}/audio", headers={"Range": header} if header else {}
            )
            assert r.status == 206, (who, header, r.status)
            assert len(r.body()) < size, (who, header)
            assert r.headers["content-disposition"] == "inline"
            after = _played(live, rec)
            assert len(after) == before + 1, (who, header)
            assert after[-1]["bytes"] == len(r.body())
        assert page.request.get(f"/api/recordings/{rec}/download").status == 403
    # the in-page player still plays to the end and seeks anywhere
    page = new_page()
    log_in(page, "bob")
    page.goto(f"/recordings/{rec}")
    before = len(_played(live, rec))
    duration = _wait_playing(page)
    page.evaluate(
        f"() => {{ document.querySelector('audio#player').currentTime = {duration - 2}; }}"
    )
    for _ in range(100):
        if page.evaluate("() => document.querySelector('audio#player').ended"):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the player did not reach the end after seeking")
    assert len(_played(live, rec)) > before


def test_another_session_dies_on_password_change(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    db = live.world.db
    live.call(
        lambda: add_user(
            db,
            actor="test",
            login="pia",
            name="Pia",
            password=PASSWORD,
            must_change_password=False,
        )
    )
    laptop, phone = new_page(), new_page()
    for page in (laptop, phone):
        log_in(page, "pia")
        page.wait_for_url(live.url + "/")
    laptop.goto("/password")
    laptop.fill("input[name=current]", PASSWORD)
    laptop.fill("input[name=new]", "1234567890")
    laptop.fill("input[name=confirm]", "1234567890")
    laptop.click("main button[type=submit]")
    assert "common or breached" in laptop.text_content(".error")
    laptop.fill("input[name=current]", PASSWORD)
    laptop.fill("input[name=new]", "a phrase only I know")
    laptop.fill("input[name=confirm]", "a phrase only I know")
    laptop.click("main button[type=submit]")
    laptop.wait_for_url(re.compile(r"/\?msg=password-changed"))
    assert "password changed" in laptop.text_content(".flash")
    phone.goto("/")
    phone.wait_for_url("**/login")
    assert phone.request.get("/api/auth/me").status == 401
    assert laptop.request.get("/api/auth/me").status == 200


def test_login_csrf_from_a_foreign_page_is_refused(
    live: LiveServer, new_page: Any, tmp_path: Path
) -> None:
    evil = tmp_path / "evil.html"
    evil.write_text(
        f'<form id="f" method="post" action="{live.url}/login">'
        '<input name="login" value="alice"><input name="password" value="' + PASSWORD + '">'
        '</form><script>document.getElementById("f").submit()</script>',
        encoding="utf-8",
    )
    page = new_page()
    page.goto(evil.as_uri())
    page.wait_for_url(f"{live.url}/login")
    assert "the login form expired" in page.text_content(".error")
    assert page.request.get(f"{live.url}/api/auth/me").status == 401


def test_back_after_logout_shows_nothing(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    rec = live.world.recordings["bob1"]
    page = new_page()
    log_in(page, "bob")
    page.wait_for_url(live.url + "/")
    page.goto(f"/recordings/{rec}")
    assert "+3247" in page.text_content("main")
    page.click("header form.who button[type=submit]")
    page.wait_for_url("**/login")
    page.go_back()
    page.wait_for_load_state()
    assert page.url.endswith("/login")
    assert "+3247" not in (page.text_content("main") or "")


def test_narrow_screen_has_nothing_off_screen(live: LiveServer, browser: Any) -> None:
    assert live.world is not None
    ctx = browser.new_context(base_url=live.url, viewport={"width": 390, "height": 844})
    try:
        page = ctx.new_page()
        log_in(page, "alice")
        page.wait_for_url(live.url + "/")
        for path in ("/", f"/recordings/{live.world.recordings['bob2']}", "/cases", "/numbers"):
            page.goto(path)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
            for sel in ("header form.who button", "header nav a"):
                for box in [e.bounding_box() for e in page.locator(sel).all()]:
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        page.goto(f"/recordings/{live.world.recordings['bob2']}")
        box = page.locator("audio#player").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
        shot(page, "narrow-recording")
        page.goto("/")
        shot(page, "narrow-search")
    finally:
        ctx.close()


def test_directory_login_with_group_mapping(
    slapd: Any, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from .slapd import GROUPS, PEOPLE, USERS

    server = LiveServer(
        tmp_path_factory.mktemp("ldap-live"),
        ldap_url=slapd.url,
        ldap_user_dn=f"uid={{login}},{PEOPLE}",
        ldap_group_base=GROUPS,
        ldap_admin_groups=[f"cn=portal-admins,{GROUPS}"],
        ldap_standard_groups=[f"cn=portal-users,{GROUPS}"],
    ).start()
    try:
        for login, shown, count in (
            ("dora", "(dora, admin)", "3 recordings"),
            ("sam", "(sam, standard)", "0 recordings"),
            ("alice", "(alice, admin)", "3 recordings"),  # local account: break-glass
        ):
            ctx = browser.new_context(base_url=server.url)
            page = ctx.new_page()
            password = USERS[login][1] if login in USERS else PASSWORD
            log_in(page, login, password)
            page.wait_for_url(server.url + "/")
            assert shown in page.text_content("header")
            assert page.text_content("#result-count").startswith(count)
            ctx.close()
        ctx = browser.new_context(base_url=server.url)
        page = ctx.new_page()
        log_in(page, "eve", USERS["eve"][1])  # in no mapped group
        assert "invalid login or password" in page.text_content(".error")
        ctx.close()
    finally:
        server.stop()


BULK_NUMBER = "+32470000099"


def test_bulk_labelling_and_the_case_pager(live: LiveServer, new_page: Any) -> None:
    from .fixtures import T0, record_call

    assert live.world is not None
    world = live.world

    async def many() -> None:
        for i in range(110):
            await record_call(
                world,
                recorded=BULK_NUMBER,
                other=FAR_END,
                start=T0 + timedelta(days=3, minutes=i),
                seconds=1.0,
            )

    live.call(many)
    admin = new_page()
    log_in(admin, "alice")
    admin.wait_for_url(live.url + "/")
    case_id = _make_case(admin, "Bulk review", "BULK", "#7a3db8")
    admin.goto(f"/?number={BULK_NUMBER.replace('+', '%2B')}&page_size=200")
    assert admin.text_content("#result-count").startswith("110 recordings")
    admin.check("#select-all")
    admin.select_option("#bulk-form select[name=label_id]", label="BULK")
    admin.click("#bulk-form button[value=add]")
    admin.wait_for_url("**msg=labels-added*")
    assert admin.text_content(".flash") == "label added to 110 recordings"
    assert admin.locator("table.results .chip:has-text('BULK')").count() == 110
    # the case lists them 50 to a page
    admin.goto(f"/cases/{case_id}")
    assert "(110)" in admin.text_content("main h2:has-text('Conversations')")
    assert admin.locator("table.results tbody tr[data-id]").count() == 50
    seen = set(
        admin.locator("table.results tbody tr[data-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.id)"
        )
    )
    assert "Page 1 / 3" in admin.text_content("#pager")
    admin.click("#pager a[rel=next]")
    admin.wait_for_url("**page=2")
    seen |= set(
        admin.locator("table.results tbody tr[data-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.id)"
        )
    )
    admin.click("#pager a:has-text('Last')")
    admin.wait_for_url("**page=3")
    last = admin.locator("table.results tbody tr[data-id]")
    assert last.count() == 10
    seen |= set(last.evaluate_all("rows => rows.map(r => r.dataset.id)"))
    assert len(seen) == 110
    shot(admin, "case-pager")
    # take the label off ten of them again
    admin.goto(f"/?number={BULK_NUMBER.replace('+', '%2B')}&page_size=10&sort=start&order=asc")
    admin.check("#select-all")
    admin.select_option("#bulk-form select[name=label_id]", label="BULK")
    admin.on("dialog", lambda d: d.accept())
    admin.click("#bulk-form button[value=remove]")
    admin.wait_for_url("**msg=labels-removed*")
    assert admin.text_content(".flash") == "label removed from 10 recordings"
    admin.goto(f"/cases/{case_id}")
    assert "(100)" in admin.text_content("main h2:has-text('Conversations')")
    # a standard user has nothing to tick
    bob = new_page()
    log_in(bob, "bob")
    bob.wait_for_url(live.url + "/")
    assert bob.locator("#bulk-form").count() == 0


def test_a_brussels_browser_finds_a_call_by_local_time(live: LiveServer, browser: Any) -> None:
    assert live.world is not None
    ctx = browser.new_context(base_url=live.url, timezone_id="Europe/Brussels")
    try:
        page = ctx.new_page()
        log_in(page, "bob")
        page.wait_for_url(live.url + "/")
        # bob2 started at 11:00 UTC, 12:00 in Brussels (CET, UTC+1)
        page.fill("input[name=since]", "2026-11-02T11:30")
        page.fill("input[name=until]", "2026-11-02T12:30")
        page.click("#search-form button[type=submit]")
        page.wait_for_url("**since=*")
        assert page.text_content("#result-count").startswith("1 recording")
        row = page.locator(f"tr[data-id='{live.world.recordings['bob2']}']")
        assert "2026-11-02 12:00:00 CET" in (row.text_content() or "")
        assert "Europe/Brussels" in page.text_content("#search-form")
        page.goto(f"/recordings/{live.world.recordings['bob2']}")
        assert "2026-11-02 12:00:00 CET" in page.text_content("main")
    finally:
        ctx.close()
    utc = browser.new_context(base_url=live.url, timezone_id="UTC")
    try:
        page = utc.new_page()
        log_in(page, "bob")
        page.wait_for_url(live.url + "/")
        page.goto("/?since=2026-11-02T11:30&until=2026-11-02T12:30")
        assert page.text_content("#result-count").startswith("0 recordings")
    finally:
        utc.close()


def test_waveform_drawn_and_seeking(live: LiveServer, new_page: Any) -> None:
    assert live.world is not None
    page = new_page()
    log_in(page, "bob")
    page.wait_for_url(live.url + "/")
    page.goto(f"/recordings/{live.world.recordings['bob2']}")
    assert page.text_content("#player-time") == "0:00 / 0:12"  # the duration before playing
    page.wait_for_selector("canvas#waveform[data-drawn=yes]")
    # something is drawn in the leg's colour, louder at the end than at the start
    heights = page.evaluate(
        """() => {
          const c = document.getElementById("waveform"), ctx = c.getContext("2d");
          const col = (x) => { let n = 0; const d = ctx.getImageData(x, 0, 1, c.height).data;
            for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 80) n++;
            return n; };
          return [col(20), col(c.width - 20)];
        }"""
    )
    assert 0 < heights[0] < heights[1], heights
    box = page.locator("canvas#waveform").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    at = page.evaluate("() => document.querySelector('audio#player').currentTime")
    assert 5.0 < at < 7.0, at
    assert page.text_content("#player-time").startswith("0:06 /")
    _wait_playing(page)
    assert page.evaluate("() => document.querySelector('audio#player').currentTime") > 5.0
    shot(page, "waveform")


def test_a_mode_change_in_the_portal_governs_the_very_next_call(
    live: LiveServer, new_page: Any
) -> None:
    """The portal inside `serve` changes a number's mode; the very next INVITE for it, with
    no wait in between, follows the change (declined when private, recorded when not)."""
    from urllib.parse import quote

    from tests.compliance.srcdriver import SrcCall

    assert live.policy is not None and live.recorder is not None
    policy, number = live.policy, "+32470000077"
    live.call(
        lambda: policy.add_number(
            number, actor="test", status="manual", slots=["mon-sun 00:00-24:00"]
        )
    )
    page = new_page()
    log_in(page, "alice")
    page.wait_for_url(live.url + "/")

    def set_mode(mode: str) -> None:
        page.goto(f"/numbers/{quote(number)}")
        page.select_option("#settings-form select[name=mode]", mode)
        page.click("#settings-form button[type=submit]")
        page.wait_for_url("**msg=*")

    def call() -> int:
        src = SrcCall(live.recorder.listeners["udp"], seed=77, caller=number)
        try:
            status = src.invite().status
            if status == 200:
                assert src.bye().status == 200
            return status
        finally:
            src.close()

    set_mode("private")
    assert call() == 403
    set_mode("professional")
    assert call() == 200
