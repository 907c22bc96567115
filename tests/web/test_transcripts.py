"""Transcripts in the API and the portal: text search under the recordings' access rules.

The world has calls of bob (standard), carol (standard) and admins; transcripts are stored
with the production path (:func:`store_transcript`). A standard user finds words only in
calls they may see, and cannot read another's transcript; the portal page carries the
transcript pane that loads both legs beside the player.
"""

from __future__ import annotations

from typing import Any

from siprec_recorder.transcription.store import store_transcript


def _result(caller: str, callee: str) -> dict[str, Any]:
    def leg(label: str, pid: str, text: str, start: float) -> dict[str, Any]:
        words = [
            [start + i * 0.5, start + i * 0.5 + 0.4, " " + w] for i, w in enumerate(text.split())
        ]
        seg = {
            "start_s": start,
            "end_s": start + 2,
            "text": text,
            "confidence": 0.7,
            "words": words,
        }
        return {"label": label, "participant_id": pid, "language": "en", "segments": [seg]}

    return {"model": "tiny.en", "legs": [leg("1", "a", caller, 0.3), leg("2", "b", callee, 1.5)]}


async def _transcribe(world: Any) -> None:
    await store_transcript(
        world.db, world.layout, world.recordings["bob1"], _result("sell the gold today", "agreed")
    )
    await store_transcript(
        world.db,
        world.layout,
        world.recordings["carol1"],
        _result("the secret merger price", "gold is up"),
    )


async def test_standard_user_finds_words_only_in_own_calls(as_user: Any, world: Any) -> None:
    await _transcribe(world)
    bob = await as_user("bob")
    r = await bob.get("/api/transcripts/search", params={"text": "gold"})
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [world.recordings["bob1"]]
    (hit,) = r.json()["items"][0]["hits"]
    assert hit["at_s"] == 1.3 and hit["speaker"] == "+32470000001"  # "gold": third word
    r = await bob.get("/api/transcripts/search", params={"text": "merger"})
    assert r.json()["total"] == 0 and r.json()["items"] == []
    # The recordings search takes the same words as a filter, under the same rules.
    r = await bob.get("/api/recordings", params={"text": "secret"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await bob.get(f"/api/recordings/{world.recordings['carol1']}/transcript")
    assert r.status_code == 403
    r = await bob.get(
        f"/api/recordings/{world.recordings['bob1']}/transcript", params={"text": "gold"}
    )
    assert r.status_code == 200
    legs = r.json()["legs"]
    assert [leg["speaker"] for leg in legs] == ["+32470000001", "+32478999999"]
    assert [s["hit"] for leg in legs for s in leg["segments"]] == [True, False]


async def test_admin_finds_every_call_and_bad_queries_are_400(as_user: Any, world: Any) -> None:
    await _transcribe(world)
    alice = await as_user("alice")
    r = await alice.get("/api/transcripts/search", params={"text": "gold"})
    assert {i["id"] for i in r.json()["items"]} == {
        world.recordings["bob1"],
        world.recordings["carol1"],
    }
    r = await alice.get("/api/transcripts/search", params={"text": '"merger price"'})
    assert [i["id"] for i in r.json()["items"]] == [world.recordings["carol1"]]
    r = await alice.get(
        "/api/transcripts/search", params={"text": "gold", "number": "+32470000002"}
    )
    assert [i["id"] for i in r.json()["items"]] == [world.recordings["carol1"]]
    r = await alice.get("/api/transcripts/search", params={"text": "***"})
    assert r.status_code == 400 and "no words" in r.json()["detail"]
    r = await alice.get(f"/api/recordings/{world.recordings['bob2']}/transcript")
    assert r.status_code == 200 and r.json() == {
        "id": world.recordings["bob2"],
        "available": False,
        "legs": [],
    }


async def test_portal_search_by_words(as_user: Any, world: Any) -> None:
    await _transcribe(world)
    bob = await as_user("bob")
    r = await bob.get("/", params={"text": "gold"})
    assert r.status_code == 200
    assert f"/recordings/{world.recordings['bob1']}?text=gold" in r.text
    assert world.recordings["carol1"] not in r.text  # carol's call says "gold" too
    r = await bob.get("/", params={"text": "merger"})
    assert (
        world.recordings["carol1"] not in r.text
        and "/recordings/" + world.recordings["bob1"] not in r.text
    )


async def test_recording_page_has_the_transcript_pane(as_user: Any, world: Any) -> None:
    await _transcribe(world)
    bob = await as_user("bob")
    r = await bob.get(f"/recordings/{world.recordings['bob1']}")
    assert r.status_code == 200
    assert 'id="transcript"' in r.text and "/static/transcript.js" in r.text
    js = await bob.get("/static/transcript.js")
    assert js.status_code == 200 and "currentTime" in js.text
