"""Retention, legal hold and purge: only what is past retention and not held is deleted,
retention is never shortened, every disposal is in the ledger and the store still verifies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from siprec_recorder.compliance import retention as retention_mod
from siprec_recorder.compliance.retention import (
    PurgeItem,
    RetentionError,
    add_years,
    change_legal_hold,
    extend_number,
    extend_recording,
    purge,
    recordings_of_numbers,
    release_hold,
    retention_status,
    retention_until_for,
    set_hold,
)
from siprec_recorder.storage.integrity import sha256_file, verify
from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry, Recording

from .conftest import ROOT, Store

OLD = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)  # default retention ends 2031-01-10
NOW = datetime(2032, 6, 1, 12, 0, tzinfo=UTC)


async def _row(store: Store, rec_id: str) -> Recording:
    async with store.db.session() as s:
        rec = await s.get(Recording, rec_id)
        assert rec is not None
        return rec


async def _events(store: Store, action: str) -> list[LedgerEntry]:
    async with store.db.session() as s:
        rows = await s.scalars(
            select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)
        )
        return list(rows.all())


def test_calendar_years() -> None:
    assert add_years(OLD, 5) == datetime(2031, 1, 10, 9, 0, tzinfo=UTC)
    assert add_years(datetime(2028, 2, 29, tzinfo=UTC), 5) == datetime(2033, 2, 28, tzinfo=UTC)
    assert retention_until_for(OLD) == datetime(2031, 1, 10, 9, 0, tzinfo=UTC)
    with pytest.raises(Exception, match="at least one year"):
        retention_until_for(OLD, 0)


async def test_purge_deletes_only_what_is_past_retention_and_not_held(store: Store) -> None:
    due = await store.add(OLD)
    due_interrupted = await store.add(OLD + timedelta(minutes=1), state="interrupted")
    held = await store.add(OLD + timedelta(minutes=2))
    extended = await store.add(OLD + timedelta(minutes=3))
    young = await store.add(datetime(2029, 3, 1, tzinfo=UTC))
    by_number = await store.add(OLD + timedelta(minutes=4), other="+32470555555")
    declined = await store.add(OLD + timedelta(minutes=5), state="declined")
    open_row = await store.add(OLD + timedelta(minutes=6), state="recording")
    failed = await store.add(OLD + timedelta(minutes=7), state="failed")
    await set_hold(store.db, held, actor="cli:legal", reason="case 2031-17", now=NOW)
    await extend_recording(
        store.db, extended, datetime(2034, 1, 1, tzinfo=UTC), actor="cli:legal", now=NOW
    )
    await extend_number(
        store.db, "+32470555555", datetime(2035, 1, 1, tzinfo=UTC), actor="cli:legal", now=NOW
    )
    kept_files = {}
    for rec_id in (held, extended, young, by_number):
        row = await _row(store, rec_id)
        assert row.file is not None
        kept_files[rec_id] = (row.file, row.sha256)
    gone = {}
    for rec_id in (due, due_interrupted):
        row = await _row(store, rec_id)
        assert row.file is not None and row.sidecar is not None
        gone[rec_id] = (row.file, row.sidecar, row.sha256, row.state)

    dry = await purge(store.db, store.layout, NOW, dry_run=True, actor="cli:ops")
    assert sorted(p.rec_id for p in dry.purged) == sorted([due, due_interrupted])
    assert dry.held == [held]
    for rec_id, (file, _sidecar, _, _) in gone.items():  # a dry run deletes nothing
        assert store.layout.absolute(file).exists()
        assert (await _row(store, rec_id)).state != "purged"

    report = await purge(store.db, store.layout, NOW, actor="cli:ops")
    assert sorted(p.rec_id for p in report.purged) == sorted([due, due_interrupted])
    assert report.held == [held]
    assert report.errors == []

    for rec_id, (file, sidecar, sha, _state) in gone.items():
        assert not store.layout.absolute(file).exists()
        assert not store.layout.absolute(sidecar).exists()
        row = await _row(store, rec_id)
        assert row.state == "purged"  # the row stays as the disposal record
        assert row.file is None and row.sidecar is None
        assert row.sha256 == sha
        assert row.retention_until == datetime(2031, 1, 10, 9, 0, tzinfo=UTC) + (
            timedelta(minutes=1) if rec_id == due_interrupted else timedelta()
        )
    events = {e.subject: json.loads(e.details) for e in await _events(store, "recording.purged")}
    assert set(events) == set(gone)
    for rec_id, (file, sidecar, sha, state_before) in gone.items():
        assert events[rec_id]["file"] == file
        assert events[rec_id]["sidecar"] == sidecar
        assert events[rec_id]["sha256"] == sha
        assert events[rec_id]["state_before"] == state_before
    assert {e.actor for e in await _events(store, "recording.purged")} == {"cli:ops"}

    for rec_id, (file, sha) in kept_files.items():
        assert sha256_file(store.layout.absolute(file))[0] == sha
        assert (await _row(store, rec_id)).state == "complete"
    for rec_id, state in ((declined, "declined"), (open_row, "recording"), (failed, "failed")):
        assert (await _row(store, rec_id)).state == state

    # The store still verifies: no 'missing' for the purged rows, the chain is intact.
    assert await verify(store.db, store.layout) == []
    # Nothing more to do on a second run.
    again = await purge(store.db, store.layout, NOW, actor="cli:ops")
    assert again.purged == [] and again.held == [held]


async def test_purge_pages_through_many_recordings(store: Store) -> None:
    ids = [await store.add(OLD + timedelta(seconds=i % 3), seconds=0.5) for i in range(7)]
    await set_hold(store.db, ids[2], actor="a", reason="r", now=NOW)
    await extend_recording(store.db, ids[4], datetime(2040, 1, 1, tzinfo=UTC), actor="a", now=NOW)
    report = await purge(store.db, store.layout, NOW, batch_size=2)
    assert sorted(p.rec_id for p in report.purged) == sorted(set(ids) - {ids[2], ids[4]})
    assert report.held == [ids[2]]
    assert await verify(store.db, store.layout) == []


async def test_released_hold_is_purged(store: Store) -> None:
    rec_id = await store.add(OLD)
    await set_hold(store.db, rec_id, actor="a", reason="case 1", now=NOW)
    assert (await purge(store.db, store.layout, NOW)).purged == []
    change = await release_hold(store.db, rec_id, actor="b", reason="case closed", now=NOW)
    assert change.changed
    assert [p.rec_id for p in (await purge(store.db, store.layout, NOW)).purged] == [rec_id]
    set_ev = await _events(store, "legal_hold.set")
    rel_ev = await _events(store, "legal_hold.released")
    assert [(e.subject, e.actor, json.loads(e.details)["reason"]) for e in set_ev] == [
        (rec_id, "a", "case 1")
    ]
    assert [(e.subject, e.actor, json.loads(e.details)["reason"]) for e in rel_ev] == [
        (rec_id, "b", "case closed")
    ]


async def test_hold_every_recording_of_a_number_in_a_period(store: Store) -> None:
    march = datetime(2026, 3, 1, tzinfo=UTC)
    in_march = [
        await store.add(march + timedelta(days=3)),
        await store.add(march + timedelta(days=9), recorded="+32470000002", other="+32470000001"),
    ]
    other_number = await store.add(march + timedelta(days=4), recorded="+32470000003")
    april = await store.add(datetime(2026, 4, 2, tzinfo=UTC))
    ids = await recordings_of_numbers(
        store.db, ["+32470000001"], since=march, until=datetime(2026, 4, 1, tzinfo=UTC)
    )
    outcome = await change_legal_hold(
        store.db, ids, held=True, actor="legal", reason="case 9", now=NOW
    )
    changes = outcome.changes
    assert sorted(c.rec_id for c in changes) == sorted(in_march)
    for rec_id in in_march:
        assert (await _row(store, rec_id)).legal_hold
    for rec_id in (other_number, april):
        assert not (await _row(store, rec_id)).legal_hold
    report = await purge(store.db, store.layout, datetime(2040, 1, 1, tzinfo=UTC))
    assert sorted(report.held) == sorted(in_march)
    assert sorted(p.rec_id for p in report.purged) == sorted([other_number, april])
    every = await recordings_of_numbers(store.db, ["+32470000001"])
    released = (
        await change_legal_hold(store.db, every, held=False, actor="legal", now=NOW)
    ).changes
    assert sorted(c.rec_id for c in released if c.changed) == sorted(in_march)
    assert len(await _events(store, "legal_hold.set")) == 2
    assert len(await _events(store, "legal_hold.released")) == 2


async def test_hold_needs_a_reason_and_a_recording(store: Store) -> None:
    rec_id = await store.add(OLD)
    with pytest.raises(RetentionError, match="reason"):
        await set_hold(store.db, rec_id, actor="a", reason="  ", now=NOW)
    with pytest.raises(RetentionError, match="no recording"):
        await set_hold(store.db, "nope", actor="a", reason="x", now=NOW)
    await set_hold(store.db, rec_id, actor="a", reason="x", now=NOW)
    assert not (await set_hold(store.db, rec_id, actor="a", reason="x", now=NOW)).changed
    assert len(await _events(store, "legal_hold.set")) == 1


async def test_hold_set_after_purge_selected_it_wins(store: Store) -> None:
    """A hold committed between purge's selection and its delete blocks the delete."""
    rec_id = await store.add(OLD)
    stale = await _row(store, rec_id)  # what purge selected, before the hold
    await set_hold(store.db, rec_id, actor="a", reason="late hold", now=NOW)
    due = PurgeItem(rec_id, stale.file, stale.sha256, "complete", OLD, add_years(OLD, 5))
    outcome = await retention_mod._purge_one(store.db, store.layout, stale, due, actor="x", now=NOW)
    assert outcome == "held"
    assert stale.file is not None and store.layout.absolute(stale.file).exists()
    assert (await _row(store, rec_id)).state == "complete"
    assert await _events(store, "recording.purged") == []


async def test_retention_is_never_shortened(store: Store) -> None:
    rec_id = await store.add(OLD, retention_until=datetime(2033, 1, 1, tzinfo=UTC))
    with pytest.raises(RetentionError, match="never shortened"):
        await extend_recording(
            store.db, rec_id, datetime(2032, 12, 1, tzinfo=UTC), actor="a", now=NOW
        )
    assert (await _row(store, rec_id)).retention_until == datetime(2033, 1, 1, tzinfo=UTC)
    # A lower default in the configuration does not shorten a recording already made.
    status = await retention_status(store.db, rec_id, default_years=1)
    assert status.effective == datetime(2033, 1, 1, tzinfo=UTC)
    assert (await purge(store.db, store.layout, NOW, default_years=1)).purged == []
    # Number rules only go up.
    await extend_number(
        store.db, "+32470000001", datetime(2036, 1, 1, tzinfo=UTC), actor="a", now=NOW
    )
    with pytest.raises(RetentionError, match="never shortened"):
        await extend_number(
            store.db, "+32470000001", datetime(2035, 1, 1, tzinfo=UTC), actor="a", now=NOW
        )
    assert (await _row(store, rec_id)).retention_until == datetime(2036, 1, 1, tzinfo=UTC)
    # A date in the past is not an extension.
    other = await store.add(datetime(2031, 1, 1, tzinfo=UTC))
    with pytest.raises(RetentionError, match="future"):
        await extend_recording(store.db, other, NOW - timedelta(days=1), actor="a", now=NOW)


async def test_number_rule_covers_recordings_made_later(store: Store) -> None:
    await extend_number(
        store.db, "+32470777777", datetime(2040, 1, 1, tzinfo=UTC), actor="a", now=NOW
    )
    # Made "after" the rule (its row is new), old enough to be due by the default: kept.
    later = await store.add(OLD, recorded="+32470777777")
    other = await store.add(OLD + timedelta(seconds=1))
    status = await retention_status(store.db, later)
    assert status.rules == datetime(2040, 1, 1, tzinfo=UTC)
    report = await purge(store.db, store.layout, NOW)
    assert [p.rec_id for p in report.purged] == [other]
    rules = await _events(store, "retention.number_rule")
    assert [e.subject for e in rules] == ["+32470777777"]


async def test_sidecar_retention_is_a_bound(store: Store) -> None:
    """A row that lost its retention date still keeps the one written in its sidecar."""
    rec_id = await store.add(OLD)
    row = await _row(store, rec_id)
    assert row.sidecar is not None
    path = store.layout.absolute(row.sidecar)
    doc = json.loads(path.read_text())
    doc["retention_until"] = "2037-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    status = await retention_status(store.db, rec_id, layout=store.layout)
    assert status.effective == datetime(2037, 1, 1, tzinfo=UTC)
    assert (await purge(store.db, store.layout, NOW)).purged == []


async def test_interrupted_purge_is_finished_by_the_next_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec_id = await store.add(OLD)
    row = await _row(store, rec_id)
    assert row.file is not None

    def crash(*_a: object, **_k: object) -> None:
        raise OSError("simulated crash between the ledger entry and the unlink")

    monkeypatch.setattr(retention_mod, "_unlink_recording_files", crash)
    first = await purge(store.db, store.layout, NOW)
    assert first.purged == [] and len(first.errors) == 1
    half = await _row(store, rec_id)
    assert half.state == "purged" and half.file == row.file  # decided, not yet done
    assert await verify(store.db, store.layout) == []  # file still there and still indexed
    monkeypatch.undo()
    second = await purge(store.db, store.layout, NOW)
    assert [p.rec_id for p in second.purged] == [rec_id]
    assert not store.layout.absolute(row.file).exists()
    assert (await _row(store, rec_id)).file is None
    assert len(await _events(store, "recording.purged")) == 1  # one disposal, one entry
    async with store.db.session() as s:
        assert await verify_chain(s) == []


async def test_purge_removes_emptied_folders_only(store: Store) -> None:
    a = await store.add(OLD)
    keep = await store.add(datetime(2031, 6, 1, tzinfo=UTC))
    row_a = await _row(store, a)
    assert row_a.file is not None
    day = store.layout.absolute(row_a.file).parent
    await purge(store.db, store.layout, NOW)
    assert not day.exists()
    assert not (store.root / "32470000001" / "2026").exists()
    row_k = await _row(store, keep)
    assert row_k.file is not None and store.layout.absolute(row_k.file).exists()
    assert (store.root / "index.sqlite3").exists()


async def test_purge_deletes_the_rtp_kept_beside_the_mp3(store: Store) -> None:
    """A leg the MP3 could not hold (unsupported codec) left its RTP as ``.leg<n>.pcap``:
    it is part of the recording and goes with it; another recording's files stay."""
    due = await store.add(OLD)
    keep = await store.add(OLD + timedelta(seconds=1), retention_until=NOW + timedelta(days=9))
    rows = {rec_id: await _row(store, rec_id) for rec_id in (due, keep)}
    kept: dict[str, list[str]] = {}
    for rec_id, row in rows.items():
        assert row.file is not None
        kept[rec_id] = [store.layout.raw_rtp_of(row.file, n) for n in (1, 2)]
        for rel in kept[rec_id]:
            store.layout.write_atomic(rel, b"pcap of an undecodable leg")
        assert store.layout.raw_rtp_files(row.file) == kept[rec_id]
    report = await purge(store.db, store.layout, NOW, actor="cli:ops")
    assert [p.rec_id for p in report.purged] == [due]
    assert not any(store.layout.absolute(rel).exists() for rel in kept[due])
    assert all(store.layout.absolute(rel).exists() for rel in kept[keep])
    assert await verify(store.db, store.layout) == []


# Deletion primitives allowed in the product, by file. A recording (MP3 or sidecar) may only be
# deleted by compliance/retention.py; the others delete their own temporary files.
_ALLOWED_DELETERS = {
    "siprec_recorder/compliance/retention.py": "purge: files past retention, not on hold",
    "siprec_recorder/storage/files.py": "write_atomic/cleanup_parts: own .part files only",
    "siprec_recorder/storage/spool.py": "the live spool of a call, after it is finalised",
    "siprec_recorder/testing.py": "the test harness's own ready file",
    "siprec_recorder/storage/objects.py": "ObjectStore.delete: called by purge only",
    "siprec_recorder/storage/uploader.py": "the local copy, once stored and verified in the store",
    "siprec_recorder/web/export.py": "its own temporary folder of an export zip",
    "siprec_recorder/transcription/legaudio.py": "per-leg audio handed to the transcriber",
    "siprec_recorder/transcription/store.py": "a transcript written as its recording was purged",
    "siprec_recorder/preflight.py": "its own .write-test-<pid> probe of the recordings folder",
}
_DELETE_RE = re.compile(
    r"\.unlink\(|os\.remove\(|os\.unlink\(|shutil\.rmtree\(|\.rmdir\(|os\.removedirs\("
    r"|delete\(\s*Recording\b|DELETE\s+FROM\s+recordings\b|\.truncate\("
)


def test_nothing_else_in_the_product_deletes_recordings() -> None:
    """A new deletion site anywhere else fails here, so it gets reviewed against the rule
    "only purge deletes a recording" before it is allowed."""
    offenders = []
    for path in sorted((ROOT / "siprec_recorder").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in _ALLOWED_DELETERS:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _DELETE_RE.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == [], (
        "only siprec_recorder/compliance/retention.py may delete recordings; review these "
        "and, if they cannot touch a recording, list the file in _ALLOWED_DELETERS:\n"
        + "\n".join(offenders)
    )


def test_layout_root_is_where_the_files_are(store: Store) -> None:
    assert Path(store.layout.root) == store.root
