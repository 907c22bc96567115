"""The transcript pane in a real Chromium: both legs with names, hits marked, click seeks.

Uses the live portal and browser of :mod:`tests.web.test_browser`. A transcript is stored
for one of bob's calls with the production path; bob opens the call from a search for a
word, sees the two legs side by side under the participants' numbers with the word marked,
and a click on the other leg's line moves the player to that line's start. A screenshot goes
to ``docs/screenshots/transcript.png``. On a 1400 px wide screen the transcript sits to the
right of the player and the legs are two columns side by side, each under its speaker; on a
narrow one it goes under the player. The page raises no Content-Security-Policy violation.
"""

from __future__ import annotations

from typing import Any

import pytest

from siprec_recorder.transcription.store import store_transcript

from .test_browser import SHOTS, browser, live, log_in, new_page  # noqa: F401
from .test_transcripts import _result as result

pytestmark = pytest.mark.browser


def _store_gold_transcript(server: Any) -> str:
    """Bob's second call gets a two-line transcript whose first line says "gold"; its id."""
    world = server.world
    rec_id: str = world.recordings["bob2"]

    async def store() -> None:
        await store_transcript(
            world.db,
            world.layout,
            rec_id,
            result("we should sell the gold today", "agreed at nine forty"),
        )

    server.call(store)
    return rec_id


def test_transcript_beside_player_click_seeks(live: Any, new_page: Any) -> None:  # noqa: F811
    rec_id = _store_gold_transcript(live)
    page = new_page()
    log_in(page, "bob")
    page.wait_for_url(live.url + "/")
    page.fill("input[name=text]", "gold")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**text=gold*")
    page.click(f"a[href='/recordings/{rec_id}?text=gold']")
    page.wait_for_selector("#transcript-legs mark")
    names = page.locator("#transcript-legs h3").all_text_contents()
    assert names == ["+32470000001", "+3225550000"]
    assert page.locator("#transcript-legs mark").all_text_contents() == ["gold"]
    page.locator(".transcript-line", has_text="agreed").click()
    for _ in range(50):
        at = page.evaluate("() => document.querySelector('audio#player').currentTime")
        if abs(at - 1.5) < 0.3:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"the player is at {at}, not at the line's 1.5 s")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "transcript.png"), full_page=True)


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return dict(box)


def test_transcript_layout_beside_the_player(live: Any, browser: Any) -> None:  # noqa: F811
    rec_id = _store_gold_transcript(live)
    ctx = browser.new_context(base_url=live.url, viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        page = ctx.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        log_in(page, "bob")
        page.wait_for_url(live.url + "/")
        page.goto(f"/recordings/{rec_id}?text=gold")
        page.wait_for_selector("#transcript-legs mark")

        player, pane = _box(page, "audio#player"), _box(page, "#transcript")
        assert pane["x"] >= player["x"] + player["width"], (player, pane)  # to its right
        assert pane["y"] < player["y"] + player["height"], (player, pane)  # and level with it
        assert player["y"] < pane["y"] + pane["height"], (player, pane)

        legs = page.locator("#transcript-legs .transcript-leg")
        assert legs.count() == 2
        first, second = (dict(legs.nth(i).bounding_box() or {}) for i in range(2))
        assert second["x"] >= first["x"] + first["width"], (first, second)  # side by side
        assert abs(second["y"] - first["y"]) < 1, (first, second)
        assert first["width"] > 200 and second["width"] > 200
        headers = [legs.nth(i).locator("h3").inner_text() for i in range(2)]
        assert headers == ["+32470000001", "+3225550000"]
        assert legs.nth(0).locator("mark").all_text_contents() == ["gold"]
        assert legs.nth(0).locator(".transcript-line.hit").count() == 1
        assert legs.nth(1).locator("mark").count() == 0
        assert "agreed at nine forty" in legs.nth(1).inner_text()

        # the click still seeks in this layout
        legs.nth(1).locator(".transcript-line").first.click()
        page.wait_for_function(
            "() => Math.abs(document.querySelector('audio#player').currentTime - 1.5) < 0.3"
        )

        # narrow: the transcript goes under the player
        page.set_viewport_size({"width": 800, "height": 900})
        player, pane = _box(page, "#listen"), _box(page, "#transcript")
        assert pane["y"] >= player["y"] + player["height"], (player, pane)
        assert violations == [], violations
    finally:
        ctx.close()
