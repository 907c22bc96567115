"""The completeness report lists every offered session with its outcome, and counts them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from siprec_recorder.compliance.report import completeness
from siprec_recorder.compliance.retention import purge
from siprec_recorder.storage.ledger import last_entry

from .conftest import Store

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def _fill(store: Store) -> dict[str, str]:
    ids = {
        "c1": await store.add(T),
        "c2": await store.add(T + timedelta(minutes=1)),
        "c3": await store.add(T + timedelta(minutes=2)),
        "i1": await store.add(
            T + timedelta(minutes=3), state="interrupted", reason="recorder stopped during the call"
        ),
        "f1": await store.add(T + timedelta(minutes=4), state="failed", reason="no media received"),
        "d1": await store.add(T + timedelta(minutes=5), state="declined", reason="private-mode"),
        "d2": await store.add(
            T + timedelta(minutes=6), state="declined", reason="emergency-number"
        ),
        "d3": await store.add(T + timedelta(minutes=7), state="declined", reason="private-mode"),
        "r1": await store.add(T + timedelta(minutes=8), state="recording"),
        # outside the window on both sides
        "before": await store.add(T - timedelta(seconds=1)),
        "after": await store.add(T + timedelta(hours=1)),
    }
    return ids


async def test_counts_and_lines(store: Store) -> None:
    ids = await _fill(store)
    report = await completeness(store.db, T, T + timedelta(hours=1))
    assert report.counts == {
        "offered": 9,
        "accepted": 6,
        "complete": 3,
        "interrupted": 1,
        "failed": 1,
        "declined": 3,
        "in-progress": 1,
        "purged": 0,
    }
    assert report.declined_by_reason == {"emergency-number": 1, "private-mode": 2}
    assert report.failed_by_reason == {
        "failed: no media received": 1,
        "interrupted: recorder stopped during the call": 1,
    }
    by_id = {s.rec_id: s for s in report.sessions}
    assert ids["before"] not in by_id and ids["after"] not in by_id
    assert by_id[ids["d1"]].outcome == "declined" and by_id[ids["d1"]].reason == "private-mode"
    assert by_id[ids["r1"]].outcome == "in-progress"
    assert by_id[ids["c1"]].file is not None
    assert [s.start for s in report.sessions] == sorted(s.start for s in report.sessions)

    doc = json.loads(report.to_json())
    assert doc["counts"]["offered"] == 9
    assert doc["period"] == {"since": "2026-11-02T09:00:00Z", "until": "2026-11-02T10:00:00Z"}
    assert {s["id"] for s in doc["sessions"]} == set(by_id)

    async with store.db.session() as session:
        head = await last_entry(session)
    assert head is not None and report.ledger_head == (head.seq, head.hash)
    assert doc["ledger_head"] == {"seq": head.seq, "hash": head.hash}

    table = report.to_table()
    assert (
        "offered 9: accepted 6 (complete 3, interrupted 1, failed 1, in progress 1), "
        "declined 3" in table
    )
    assert "declined, private-mode: 2" in table
    for rec_id in by_id:
        assert rec_id in table
    assert f"audit ledger head: entry {head.seq}, sha256 {head.hash}" in table


async def test_purged_sessions_keep_their_outcome(store: Store) -> None:
    ids = await _fill(store)
    await purge(store.db, store.layout, T + timedelta(days=365 * 7))
    report = await completeness(store.db, T, T + timedelta(hours=1))
    c = report.counts
    assert (c["complete"], c["interrupted"], c["purged"]) == (3, 1, 4)
    by_id = {s.rec_id: s for s in report.sessions}
    assert by_id[ids["i1"]].outcome == "interrupted" and by_id[ids["i1"]].purged
    assert by_id[ids["c1"]].file is None
    assert "purged after retention" in report.to_table()
