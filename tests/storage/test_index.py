"""The recording index: create/finish/search round trips, declined rows, reports."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.index import (
    DeclinedCall,
    DtmfInfo,
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    RecordingNotFound,
    SqlIndex,
    StreamInfo,
)
from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry

T0 = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)
ME = "+32470000001"
FAR = "+3222334455"
TRANSFER = "+32499887766"


def _new(i: int = 0, **kw: object) -> NewRecording:
    fields: dict[str, object] = {
        "call_id": f"call-{i}@sbc",
        "start": T0 + timedelta(minutes=i),
        "recorded_number": ME,
        "other_number": FAR,
        "direction": "out",
        "siprec_session_id": f"sess{i}",
        "source": "10.0.0.1:5060",
        "participants": [
            ParticipantInfo("p1", "sip:+32470000001@ims;user=phone", "Alice", ME, "caller", T0),
            ParticipantInfo("p2", "tel:+3222334455", None, FAR, "callee", T0),
        ],
    }
    fields.update(kw)
    return NewRecording(**fields)  # type: ignore[arg-type]


def _finished(**kw: object) -> FinishedRecording:
    fields: dict[str, object] = {
        "end": T0 + timedelta(seconds=95),
        "duration_s": 95.04,
        "file": "32470000001/2026/03/02/x.mp3",
        "sidecar": "32470000001/2026/03/02/x.json",
        "sha256": "ab" * 32,
        "size_bytes": 1234,
        "sample_rate": 8000,
        "channels": 1,
        "streams": [
            StreamInfo(
                "1",
                stream_id="s1",
                participant_id="p1",
                codec="PCMA",
                sample_rate=8000,
                packets_expected=4750,
                packets_received=4740,
                packets_lost=10,
                packets_late=2,
                packets_duplicate=1,
                jitter_ms=3.5,
                longest_gap_ms=60.0,
                mos=4.3,
                first_packet_at=T0,
                last_packet_at=T0 + timedelta(seconds=95),
            ),
            StreamInfo("2", stream_id="s2", participant_id="p2", codec="PCMA", status="no_media"),
        ],
        "dtmf": [DtmfInfo("1", "5", 12.5, 120), DtmfInfo("1", "#", 13.0, 100)],
    }
    fields.update(kw)
    return FinishedRecording(**fields)  # type: ignore[arg-type]


async def test_create_finish_get_round_trip(index: SqlIndex) -> None:
    rec_id = await index.create_recording(_new())
    assert len(rec_id) == 32
    row = await index.get(rec_id)
    assert row is not None
    assert row["state"] == "recording"
    assert row["start"] == "2026-03-02T09:30:00Z"
    assert row["end"] is None
    assert [o["id"] for o in await index.open_recordings()] == [rec_id]

    await index.finish_recording(rec_id, _finished())
    row = await index.get(rec_id)
    assert row is not None
    json.dumps(row)  # JSON-ready
    assert row["state"] == "complete"
    assert row["end"] == "2026-03-02T09:31:35Z"
    assert row["duration_s"] == pytest.approx(95.04)
    assert row["sha256"] == "ab" * 32
    assert row["direction"] == "out"
    assert row["recorded_number"] == ME and row["other_number"] == FAR
    assert [p["participant_id"] for p in row["participants"]] == ["p1", "p2"]
    assert row["participants"][0] == {
        "participant_id": "p1",
        "aor": "sip:+32470000001@ims;user=phone",
        "name": "Alice",
        "number": ME,
        "role": "caller",
        "joined_at": "2026-03-02T09:30:00Z",
        "left_at": None,
    }
    s1, s2 = row["streams"]
    assert s1["label"] == "1" and s1["packets_lost"] == 10 and s1["mos"] == 4.3
    assert s1["first_packet_at"] == "2026-03-02T09:30:00Z"
    assert s2["status"] == "no_media" and s2["packets_received"] == 0
    assert row["dtmf"] == [
        {"label": "1", "digit": "5", "at_s": 12.5, "duration_ms": 120},
        {"label": "1", "digit": "#", "at_s": 13.0, "duration_ms": 100},
    ]
    assert await index.open_recordings() == []
    assert await index.get("0" * 32) is None


async def test_finish_twice_refused_and_unknown_id(index: SqlIndex) -> None:
    rec_id = await index.create_recording(_new())
    await index.finish_recording(rec_id, _finished())
    with pytest.raises(LocalProtocolError, match="already complete"):
        await index.finish_recording(rec_id, _finished())
    with pytest.raises(LocalProtocolError, match="no recording"):
        await index.finish_recording("f" * 32, _finished())
    with pytest.raises(LocalProtocolError, match="finished state"):
        await index.finish_recording(rec_id, _finished(state="declined"))


async def test_search_matches_any_participant_and_time_window(index: SqlIndex) -> None:
    a = await index.create_recording(_new(0))
    b = await index.create_recording(_new(10, other_number="+3233333333", participants=[]))
    c = await index.create_recording(
        _new(
            20,
            recorded_number="+32470000009",
            other_number=None,
            participants=[ParticipantInfo("p9", number="+32470000009")],
        )
    )
    # A transfer adds a third party to call a.
    await index.update_participants(
        a,
        [
            ParticipantInfo("p1", None, None, ME, "caller", T0),
            ParticipantInfo("p2", None, None, FAR, "callee", T0, T0 + timedelta(seconds=30)),
            ParticipantInfo("p3", "tel:+32499887766", None, TRANSFER, None, T0),
        ],
    )
    ids = lambda rows: [r["id"] for r in rows]  # noqa: E731
    assert ids(await index.search(TRANSFER)) == [a]
    assert ids(await index.search(FAR)) == [a]  # participant p2 and other_number
    assert ids(await index.search(ME)) == [b, a]  # newest first
    assert ids(await index.search(["0470000009", "+32470000009"])) == [c]
    assert ids(await index.search("+3233333333")) == [b]
    assert await index.search("+1555") == []
    assert await index.search([]) == []
    assert ids(await index.search()) == [c, b, a]
    assert ids(await index.search(since=T0 + timedelta(minutes=5))) == [c, b]
    assert ids(await index.search(until=T0 + timedelta(minutes=10))) == [a]  # until exclusive
    assert ids(await index.search(limit=1, offset=1)) == [b]
    assert ids(await index.search(states=["complete"])) == []
    row = (await index.search(TRANSFER))[0]
    assert row["participants"][1]["left_at"] == "2026-03-02T09:30:30Z"
    assert len(row["participants"]) == 3


async def test_search_is_not_n_plus_one(db: Database, index: SqlIndex) -> None:
    for i in range(15):
        rec_id = await index.create_recording(_new(i))
        await index.finish_recording(rec_id, _finished())
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        rows = await index.search(ME)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len(rows) == 15
    assert all(len(r["streams"]) == 2 and len(r["dtmf"]) == 2 for r in rows)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4  # recordings + participants + streams + dtmf


async def test_declined_row(index: SqlIndex) -> None:
    rec_id = await index.record_declined(
        DeclinedCall(
            call_id="c-decl",
            start=T0,
            reason="outside-schedule",
            recorded_number=ME,
            other_number=FAR,
            direction="in",
            participants=[ParticipantInfo("p1", number=ME)],
        )
    )
    row = await index.get(rec_id)
    assert row is not None
    assert row["state"] == "declined"
    assert row["reason"] == "outside-schedule"
    assert row["file"] is None and row["duration_s"] == 0.0
    assert row["start"] == row["end"] == "2026-03-02T09:30:00Z"
    assert [r["id"] for r in await index.search(ME, states=["declined"])] == [rec_id]
    assert await index.open_recordings() == []


async def test_mark_interrupted_and_counts(index: SqlIndex) -> None:
    a = await index.create_recording(_new(0))
    b = await index.create_recording(_new(1))
    await index.finish_recording(b, _finished(state="failed", reason="no media received"))
    await index.mark_interrupted(a, end=T0 + timedelta(seconds=42), reason="crash")
    await index.record_declined(DeclinedCall("c", T0, "private-mode", recorded_number=ME))
    row = await index.get(a)
    assert row is not None
    assert row["state"] == "interrupted" and row["reason"] == "crash"
    assert row["duration_s"] == pytest.approx(42.0)
    with pytest.raises(LocalProtocolError):
        await index.mark_interrupted(a)
    counts = await index.count_by_state()
    assert counts == {
        "recording": 0,
        "complete": 0,
        "interrupted": 1,
        "failed": 1,
        "declined": 1,
        "purged": 0,
    }
    assert sum((await index.count_by_state(T0 + timedelta(days=1))).values()) == 0


async def test_every_state_change_is_in_the_ledger(db: Database, index: SqlIndex) -> None:
    a = await index.create_recording(_new(0))
    await index.finish_recording(a, _finished())
    b = await index.create_recording(_new(1))
    await index.mark_interrupted(b, reason="crash")
    d = await index.record_declined(DeclinedCall("c", T0, "emergency-number"))
    async with db.session() as s:
        entries = (await s.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))).all()
        assert await verify_chain(s) == []
    assert [(e.action, e.subject) for e in entries] == [
        ("recording.started", a),
        ("recording.finished", a),
        ("recording.started", b),
        ("recording.interrupted", b),
        ("recording.declined", d),
    ]
    assert json.loads(entries[1].details)["sha256"] == "ab" * 32


async def test_concurrent_creates_keep_the_chain(db: Database, index: SqlIndex) -> None:
    ids = await asyncio.gather(*(index.create_recording(_new(i)) for i in range(25)))
    await asyncio.gather(*(index.finish_recording(i, _finished()) for i in ids))
    async with db.session() as s:
        assert await verify_chain(s) == []
        n = len((await s.scalars(select(LedgerEntry.seq))).all())
    assert n == 50


def _count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _commit(_conn: object) -> None:
        commits[0] += 1

    return commits


async def test_concurrent_writes_share_transactions(db: Database, index: SqlIndex) -> None:
    commits = _count_commits(db)
    ids = await asyncio.gather(*(index.create_recording(_new(i)) for i in range(60)))
    creates = commits[0]
    await asyncio.gather(*(index.finish_recording(i, _finished()) for i in ids))
    finishes = commits[0] - creates
    # The first item is written alone; the 59 queued behind it go in one more transaction.
    assert creates <= 3 and finishes <= 3, (creates, finishes)
    rows = await index.search(number=ME, limit=100)
    assert len(rows) == 60
    assert {r["state"] for r in rows} == {"complete"}
    assert all(len(r["streams"]) == 2 and len(r["dtmf"]) == 2 for r in rows)
    assert all(len(r["participants"]) == 2 for r in rows)
    async with db.session() as s:
        assert await verify_chain(s) == []


@pytest.mark.parametrize("window", [0.0, 0.25])
async def test_a_batch_window_gathers_writes_that_trickle_in(db: Database, window: float) -> None:
    """Calls that start 20 ms apart share a transaction when the index waits for them."""
    index = SqlIndex(db, batch_window=window)
    commits = _count_commits(db)

    async def later(i: int) -> str:
        await asyncio.sleep(0.02 * i)
        return await index.create_recording(_new(i))

    ids = await asyncio.gather(*(later(i) for i in range(8)))
    assert len(set(ids)) == 8
    if window:
        assert commits[0] <= 2, commits  # all eight fall within the first window (0.14 s)
    else:
        assert commits[0] > 2, commits  # written as they come
    async with db.session() as s:
        assert await verify_chain(s) == []


async def test_one_bad_item_fails_alone_in_its_batch(db: Database, index: SqlIndex) -> None:
    done = await index.create_recording(_new(0))
    await index.finish_recording(done, _finished())
    fresh = await asyncio.gather(*(index.create_recording(_new(i)) for i in range(1, 6)))
    results = await asyncio.gather(
        *(index.finish_recording(i, _finished()) for i in [fresh[0], done, *fresh[1:]]),
        index.finish_recording("e" * 32, _finished()),
        return_exceptions=True,
    )
    assert results[0] is None and results[2:6] == [None] * 4
    assert isinstance(results[1], LocalProtocolError) and "already complete" in str(results[1])
    assert isinstance(results[6], RecordingNotFound)
    for rec_id in fresh:
        row = await index.get(rec_id)
        assert row is not None and row["state"] == "complete" and len(row["streams"]) == 2
    async with db.session() as s:
        assert await verify_chain(s) == []
        actions = (await s.scalars(select(LedgerEntry.action))).all()
    assert actions.count("recording.finished") == 6  # not one for the refused ones


async def test_finish_keeps_participants_unless_given(index: SqlIndex) -> None:
    a, b = await asyncio.gather(index.create_recording(_new(0)), index.create_recording(_new(1)))
    moved = [ParticipantInfo("p9", "tel:+32499887766", None, TRANSFER, "callee", T0)]
    await asyncio.gather(
        index.finish_recording(a, _finished()),
        index.finish_recording(b, _finished(participants=moved)),
    )
    row_a, row_b = await index.get(a), await index.get(b)
    assert row_a is not None and row_b is not None
    assert [p["participant_id"] for p in row_a["participants"]] == ["p1", "p2"]
    assert [p["number"] for p in row_b["participants"]] == [TRANSFER]


async def test_dicts_accepted_as_the_session_layer_passes_them(index: SqlIndex) -> None:
    from siprec_recorder.storage.index import ParticipantRow, StreamRow

    assert ParticipantRow is ParticipantInfo and StreamRow is StreamInfo
    rec_id = await index.create_recording(
        NewRecording(
            call_id="c",
            start=T0,
            participants=[{"participant_id": "p1", "number": ME, "joined_at": "2026-03-02T09:30Z"}],
            metadata_json={"datamode": "complete"},
            retention_years=5,
        )
    )
    await index.update_participants(
        rec_id, [{"participant_id": "p1", "number": ME}, {"number": FAR}]
    )
    await index.finish_recording(
        rec_id,
        FinishedRecording(
            end=T0 + timedelta(seconds=3),
            duration_s=3.0,
            streams=[{"label": "1", "packets_received": 150, "jitter_ms": 2}],
            dtmf=[{"label": "1", "digit": "9", "at_s": 1.25, "duration_ms": 90}],
        ),
    )
    row = await index.get(rec_id)
    assert row is not None
    assert row["metadata"] == {"datamode": "complete"}
    assert row["retention_until"] == iso_z(T0 + timedelta(days=1826))
    assert [p["number"] for p in row["participants"]] == [ME, FAR]
    assert row["streams"][0]["packets_received"] == 150 and row["streams"][0]["jitter_ms"] == 2.0
    assert row["dtmf"][0]["digit"] == "9"
    assert [r["id"] for r in await index.search(FAR)] == [rec_id]


def iso_z(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")
