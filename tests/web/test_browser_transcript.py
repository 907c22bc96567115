"""The transcript pane in a real Chromium: both legs with names, hits marked, click seeks.

Uses the live portal and browser of :mod:`tests.web.test_browser`. A transcript is stored
for one of bob's calls with the production path; bob opens the call from a search for a
word, sees the two legs side by side under the participants' numbers with the word marked,
and a click on the other leg's line moves the player to that line's start. A screenshot goes
to ``docs/screenshots/transcript.png``.
"""

from __future__ import annotations

from typing import Any

import pytest

from siprec_recorder.transcription.store import store_transcript

from .test_browser import SHOTS, browser, live, log_in, new_page  # noqa: F401
from .test_transcripts import _result as result

pytestmark = pytest.mark.browser


def test_transcript_beside_player_click_seeks(live: Any, new_page: Any) -> None:  # noqa: F811
    world = live.world
    rec_id = world.recordings["bob2"]

    async def store() -> None:
        await store_transcript(
            world.db,
            world.layout,
            rec_id,
            result("we should sell the gold today", "agreed at nine forty"),
        )

    live.call(store)
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
