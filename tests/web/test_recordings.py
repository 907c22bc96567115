"""Roles, search, playback with ranges and download."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from siprec_recorder.storage.models import LedgerEntry

from .fixtures import BOB_NUMBER, FAR_END


async def test_admin_sees_all_with_counts_and_sorting(as_user):
    c = await as_user("alice")
    r = (await c.get("/api/recordings", params={"sort": "duration", "order": "asc"})).json()
    assert r["total"] == 3
    assert [i["duration_s"] for i in r["items"]] == [3.0, 6.0, 12.0]
    r = (await c.get("/api/recordings", params={"page_size": 2, "page": 2})).json()
    assert r["total"] == 3 and r["pages"] == 2 and len(r["items"]) == 1
    assert (await c.get("/api/recordings", params={"sort": "sha256"})).status_code == 422


async def test_search_filters(as_user, world):
    c = await as_user("alice")

    async def total(**params):  # type: ignore[no-untyped-def]
        r = await c.get("/api/recordings", params=params)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    assert await total(number=FAR_END) == 2
    assert await total(number="0032470000001") == 2  # any form of the number
    assert await total(user="bob") == 2
    assert await total(user="carol") == 1
    assert await total(direction="in") == 1
    assert await total(min_duration=5) == 2
    assert await total(max_duration=5) == 1
    assert await total(since="2026-11-02T10:30:00Z") == 1
    assert await total(until="2026-11-02T09:30:00Z") == 1
    assert (
        await c.get(
            "/api/recordings",
            params={"since": "2026-11-03T00:00:00Z", "until": "2026-11-02T00:00:00Z"},
        )
    ).status_code == 400


async def test_standard_user_sees_only_own_calls(as_user, world):
    c = await as_user("bob")
    r = (await c.get("/api/recordings")).json()
    assert r["total"] == 2
    assert {i["recorded_number"] for i in r["items"]} == {BOB_NUMBER}
    assert all(i["can_play"] and not i["can_download"] for i in r["items"])
    carol = world.recordings["carol1"]
    assert (await c.get(f"/api/recordings/{carol}")).status_code == 403
    assert (await c.get(f"/api/recordings/{carol}/audio")).status_code == 403
    own = world.recordings["bob1"]
    assert (await c.get(f"/api/recordings/{own}/audio")).status_code == 206
    assert (await c.get(f"/api/recordings/{own}/download")).status_code == 403
    assert (await c.get(f"/api/recordings/{carol}/download")).status_code == 403
    # searching for carol's number finds nothing for bob
    assert (await c.get("/api/recordings", params={"user": "carol"})).json()["total"] == 0


async def _played(world, rec: str) -> list[dict]:  # type: ignore[no-untyped-def]
    async with world.db.session() as s:
        rows = (
            (await s.execute(select(LedgerEntry).where(LedgerEntry.subject == f"recording:{rec}")))
            .scalars()
            .all()
        )
    return [{"action": e.action, **json.loads(e.details or "{}")} for e in rows]


async def test_playback_supports_ranges_and_is_audited(as_user, world):
    c = await as_user("alice")
    rec = world.recordings["bob2"]
    d = await c.get(f"/api/recordings/{rec}/download", headers={"Range": "bytes=0-9"})
    assert d.status_code == 200
    assert "attachment" in d.headers["content-disposition"]
    data = d.content
    assert data[:3] == b"ID3" or data[0] == 0xFF
    first = await c.get(f"/api/recordings/{rec}/audio")
    assert first.status_code == 206  # the player never gets the whole file in one answer
    assert first.headers["accept-ranges"] == "bytes"
    assert first.headers["content-type"] == "audio/mpeg"
    assert first.headers["content-disposition"] == "inline"
    half = -(-len(data) // 2)
    assert first.headers["content-range"] == f"bytes 0-{half - 1}/{len(data)}"
    assert first.content == data[:half]
    r = await c.get(f"/api/recordings/{rec}/audio", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert r.content == data[100:200]
    r = await c.get(f"/api/recordings/{rec}/audio", headers={"Range": "bytes=-50"})
    assert r.status_code == 206 and r.content == data[-50:]
    r = await c.get(f"/api/recordings/{rec}/audio", headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"
    # the player gets all of it, piece by piece, from where it seeks
    got, pos = b"", 0
    while pos < len(data):
        r = await c.get(f"/api/recordings/{rec}/audio", headers={"Range": f"bytes={pos}-"})
        assert r.status_code == 206 and 0 < len(r.content) <= half
        got += r.content
        pos += len(r.content)
    assert got == data
    events = await _played(world, rec)
    plays = [e for e in events if e["action"] == "web.recording_played"]
    assert len(plays) == 4 + -(-len(data) // half)  # every answer, even the 416, is in the trail
    assert sum(e["bytes"] for e in plays) == half + 100 + 50 + len(data)
    assert [e["action"] for e in events].count("web.recording_downloaded") == 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        "bytes=0-",
        "bytes=00-",
        "Bytes=0-",
        "BYTES = 0 -",
        "bytes=-99999999",
        "items=0-",
        "bytes=0-10,20-",
        "bytes=0-99999999999999999999999",
        "bytes=",
        "garbage",
    ],
)
@pytest.mark.parametrize("who", ["bob", "audrey", "alice"])
async def test_no_range_spelling_gets_the_whole_file_or_escapes_the_audit(
    as_user, world, header, who
):  # type: ignore[no-untyped-def]
    rec = world.recordings["bob1"]
    size = (await (await as_user("alice")).get(f"/api/recordings/{rec}/download")).content
    c = await as_user(who)
    before = len([e for e in await _played(world, rec) if e["action"] == "web.recording_played"])
    r = await c.get(
        f"/api/recordings/{rec}/audio", headers={"Range": header} if header is not None else {}
    )
    assert r.status_code in (206, 416), r.status_code
    assert len(r.content) < len(size)
    plays = [e for e in await _played(world, rec) if e["action"] == "web.recording_played"]
    assert len(plays) == before + 1
    assert plays[-1]["bytes"] == len(r.content)
    if who != "alice":
        assert (await c.get(f"/api/recordings/{rec}/download")).status_code == 403


async def test_auditor_reads_but_never_changes(as_user, world):
    c = await as_user("audrey")
    assert (await c.get("/api/recordings")).json()["total"] == 3
    rec = world.recordings["carol1"]
    assert (await c.get(f"/api/recordings/{rec}/audio")).status_code == 206
    assert (await c.get(f"/api/recordings/{rec}/download")).status_code == 403
    assert (
        await c.post("/api/labels", json={"title": "A", "colour": "#000000"})
    ).status_code == 403
    assert (await c.get("/api/audit")).status_code == 200
    std = await as_user("bob")
    assert (await std.get("/api/audit")).status_code == 403


async def test_audit_trail_filters_and_chain_status(as_user, world):
    c = await as_user("alice")
    await c.get(f"/api/recordings/{world.recordings['bob1']}")
    r = (await c.get("/api/audit", params={"action": "recording_viewed"})).json()
    assert r["chain_ok"] is True
    assert r["total"] >= 1
    assert all("recording_viewed" in e["action"] for e in r["items"])
    r = (await c.get("/api/audit", params={"actor": "alice"})).json()
    assert all(e["actor"] == "alice" for e in r["items"])


async def test_unknown_recording_is_404(as_user):
    c = await as_user("alice")
    assert (await c.get("/api/recordings/nope")).status_code == 404


async def test_encrypted_recording_is_decrypted_for_playback(world, settings, policy):  # type: ignore[no-untyped-def]
    import dataclasses
    from datetime import UTC, datetime

    import httpx

    from siprec_recorder.compliance.crypto import EncryptionKey, KeyRing, encrypt_bytes
    from siprec_recorder.storage.index import (
        FinishedRecording,
        NewRecording,
        ParticipantInfo,
        SqlIndex,
    )
    from siprec_recorder.web.app import create_app

    from .conftest import login
    from .fixtures import tone_mp3

    key = EncryptionKey.generate()
    clear = tone_mp3(2.0)
    blob, key_id = encrypt_bytes(clear, key)
    index = SqlIndex(world.db)
    start = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    rec_id = await index.create_recording(
        NewRecording(
            call_id="enc-1",
            start=start,
            recorded_number=BOB_NUMBER,
            other_number=FAR_END,
            direction="out",
            key_id=key_id,
            participants=[ParticipantInfo(aor=f"tel:{BOB_NUMBER}", number=BOB_NUMBER)],
        )
    )
    rel = world.layout.relative_path(BOB_NUMBER, start, "out", FAR_END, rec_id)
    sha, size = world.layout.write_atomic(rel, blob)
    await index.finish_recording(
        rec_id, FinishedRecording(end=start, duration_s=2.0, file=rel, sha256=sha, size_bytes=size)
    )

    async def fetch(keyring):  # type: ignore[no-untyped-def]
        app = create_app(
            world.db, world.layout, dataclasses.replace(settings, keyring=keyring), policy
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        ) as c:
            await login(c, "alice")
            full = await c.get(f"/api/recordings/{rec_id}/download")
            part = await c.get(f"/api/recordings/{rec_id}/audio", headers={"Range": "bytes=10-19"})
            return full, part

    full, part = await fetch(KeyRing.of([key]))
    assert full.status_code == 200 and full.content == clear
    assert part.status_code == 206 and part.content == clear[10:20]
    full, part = await fetch(None)
    assert part.status_code == 503
    assert full.status_code == 503
    assert full.json()["detail"].startswith("cannot decrypt this recording")


async def test_a_repeated_query_parameter_is_refused_not_half_applied(as_user):
    c = await as_user("alice")
    r = await c.get("/api/recordings?number=%2B32470000001&number=%2B3222000000")
    assert r.status_code == 400 and "'number'" in r.json()["detail"], r.text
    r = await c.get("/api/audit?action=recording.played&action=%5B%5D")
    assert r.status_code == 400, r.text
    assert (await c.get("/api/audit?action=recording.played")).status_code == 200
