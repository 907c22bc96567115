"""The audit ledger: an intact chain verifies; every kind of tampering is detected."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import (
    GENESIS_HASH,
    append_event,
    canonical_json,
    entry_hash,
    verify_chain,
)
from siprec_recorder.storage.models import LedgerEntry

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _fill(db: Database, n: int = 6) -> None:
    for i in range(n):
        async with db.session() as s:
            await append_event(
                s,
                actor="alice" if i % 2 else "system",
                action="recording.played",
                subject=f"rec{i}",
                details={"i": i, "note": "é ✓", "nested": {"b": 1, "a": [1, 2]}},
                now=T0 + timedelta(seconds=i),
            )
            await s.commit()


async def _problems(db: Database) -> list[str]:
    async with db.session() as s:
        return await verify_chain(s)


async def _raw(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_empty_and_intact_chain(db: Database) -> None:
    assert await _problems(db) == []
    await _fill(db)
    assert await _problems(db) == []
    async with db.session() as s:
        rows = (await s.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))).all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert rows[0].ts == T0  # microseconds survive the round trip


def test_hash_definition() -> None:
    details = {"b": 2, "a": 1}
    body = canonical_json([7, "2026-05-01T12:00:00.123456Z", "bob", "x.y", "s", details])
    assert body == '[7,"2026-05-01T12:00:00.123456Z","bob","x.y","s",{"a":1,"b":2}]'
    expected = hashlib.sha256(("f" * 64 + body).encode()).hexdigest()
    assert entry_hash("f" * 64, 7, T0, "bob", "x.y", "s", details) == expected


async def test_edited_row_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "UPDATE ledger SET actor = 'mallory' WHERE seq = 3")
    problems = await _problems(db)
    assert problems == ["ledger: entry 3 does not match its hash (edited)"]


async def test_edited_details_and_time_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "UPDATE ledger SET details = :d WHERE seq = 2", d=json.dumps({"i": 99}))
    await _raw(db, "UPDATE ledger SET ts = '2026-05-01 12:30:00.000000' WHERE seq = 5")
    problems = await _problems(db)
    assert "ledger: entry 2 does not match its hash (edited)" in problems
    assert "ledger: entry 5 does not match its hash (edited)" in problems


async def test_deleted_row_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "DELETE FROM ledger WHERE seq = 4")
    problems = await _problems(db)
    assert "ledger: entries 4 missing (deleted)" in problems
    assert any("entry 5 does not link" in p for p in problems)


async def test_deleted_first_rows_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "DELETE FROM ledger WHERE seq <= 2")
    assert "ledger: entries 1..2 missing (deleted)" in await _problems(db)


async def test_deleted_and_renumbered_detected(db: Database) -> None:
    """Deleting a row and closing the gap by renumbering still breaks hashes and links."""
    await _fill(db)
    await _raw(db, "DELETE FROM ledger WHERE seq = 3")
    await _raw(db, "UPDATE ledger SET seq = seq - 1 WHERE seq > 3")
    problems = await _problems(db)
    assert problems
    assert not any("missing" in p for p in problems)
    assert any("entry 3 does not link" in p for p in problems)


async def test_inserted_row_detected(db: Database) -> None:
    await _fill(db)
    # Make room after entry 3 and insert a forged entry with a well-formed hash of its own.
    await _raw(db, "UPDATE ledger SET seq = seq + 100 WHERE seq > 3")
    await _raw(db, "UPDATE ledger SET seq = seq - 99 WHERE seq > 100")
    async with db.session() as s:
        third = (await s.scalars(select(LedgerEntry).where(LedgerEntry.seq == 3))).one()
        forged_hash = entry_hash(third.hash, 4, T0, "mallory", "x", "y", {})
    await _raw(
        db,
        "INSERT INTO ledger (seq, ts, actor, action, subject, details, prev_hash, hash) "
        "VALUES (4, '2026-05-01 12:00:00.123456', 'mallory', 'x', 'y', '{}', :p, :h)",
        p=third.hash,
        h=forged_hash,
    )
    problems = await _problems(db)
    assert problems  # the old entry 4 (now 5) no longer links and its seq changed
    assert any("entry 5" in p for p in problems)


async def test_inserted_row_at_end_detected(db: Database) -> None:
    await _fill(db)
    await _raw(
        db,
        "INSERT INTO ledger (seq, ts, actor, action, subject, details, prev_hash, hash) "
        "VALUES (7, '2026-05-01 12:00:00', 'mallory', 'x', 'y', '{}', :p, :h)",
        p="0" * 64,
        h="1" * 64,
    )
    problems = await _problems(db)
    assert any("entry 7 does not link" in p for p in problems)
    assert any("entry 7 does not match its hash" in p for p in problems)


async def test_reordered_rows_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "UPDATE ledger SET seq = 1000 WHERE seq = 2")
    await _raw(db, "UPDATE ledger SET seq = 2 WHERE seq = 5")
    await _raw(db, "UPDATE ledger SET seq = 5 WHERE seq = 1000")
    problems = await _problems(db)
    assert any("entry 2" in p for p in problems)
    assert any("entry 5" in p for p in problems)


async def test_concurrent_appends_stay_one_chain(db: Database) -> None:
    async def one(i: int) -> None:
        async with db.session() as s:
            await append_event(s, actor="t", action="a", subject=str(i), details={})
            await asyncio.sleep(0)  # other coroutines run while this transaction is open
            await s.commit()

    await asyncio.gather(*(one(i) for i in range(40)))
    async with db.session() as s:
        seqs = (await s.scalars(select(LedgerEntry.seq).order_by(LedgerEntry.seq))).all()
        assert await verify_chain(s) == []
    assert seqs == list(range(1, 41))


async def test_rolled_back_and_closed_sessions_release_the_lock(db: Database) -> None:
    async with db.session() as s:
        await append_event(s, actor="t", action="a", subject="gone", details={})
        await s.rollback()
    async with db.session() as s:
        await append_event(s, actor="t", action="a", subject="gone too", details={})
        # closed without commit
    async with asyncio.timeout(5):
        async with db.session() as s:
            entry = await append_event(s, actor="t", action="a", subject="kept", details={})
            await s.commit()
    assert entry.seq == 1
    assert await _problems(db) == []


async def test_non_json_details_refused(db: Database) -> None:
    async with db.session() as s:
        with pytest.raises(TypeError):
            await append_event(s, actor="t", action="a", subject="x", details={"x": object()})
    async with asyncio.timeout(5), db.session() as s:
        await append_event(s, actor="t", action="a", subject="y", details={})
        await s.commit()


async def test_entries_cut_from_the_end_detected(db: Database) -> None:
    await _fill(db)
    await _raw(db, "DELETE FROM ledger WHERE seq >= 5")
    problems = await _problems(db)
    assert problems == [
        "ledger: head names entry 6 but the chain ends at 4 (entries deleted from the end)"
    ]


async def test_head_row_missing_detected_and_appends_refused(db: Database) -> None:
    await _fill(db, 2)
    await _raw(db, "DELETE FROM ledger_head")
    assert await _problems(db) == ["ledger: head record missing"]
    async with db.session() as s:
        with pytest.raises(LocalProtocolError, match="ledger_head"):
            await append_event(s, actor="t", action="a", subject="x", details={})


_WORKER = """
import asyncio, sys
from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event

async def main(url, name, n):
    db = Database(url)
    await db.open()
    for i in range(n):
        async with db.session() as s:
            await append_event(s, actor=name, action="a", subject=str(i), details={"i": i})
            await s.commit()
    await db.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_appends_from_several_processes_stay_one_chain(db: Database) -> None:
    import os
    import subprocess
    import sys

    import siprec_recorder

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(siprec_recorder.__file__).parent.parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, db.url, f"proc{k}", "25"], env=env)
        for k in range(3)
    ]
    codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 60) for p in procs))
    assert codes == [0, 0, 0]
    async with db.session() as s:
        seqs = (await s.scalars(select(LedgerEntry.seq).order_by(LedgerEntry.seq))).all()
        assert await verify_chain(s) == []
    assert seqs == list(range(1, 76))


async def test_head_created_lazily_on_a_schema_made_without_open(tmp_path: Path) -> None:
    from siprec_recorder.storage.models import Base

    db = Database(f"sqlite+aiosqlite:///{tmp_path}/x.sqlite3")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.session() as s:
        await append_event(s, actor="t", action="a", subject="x", details={})
        await s.commit()
    async with db.session() as s:
        await append_event(s, actor="t", action="a", subject="y", details={})
        await s.commit()
    assert await _problems(db) == []
    await db.close()


async def test_nested_appends_in_one_task_fail_instead_of_hanging(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siprec_recorder.storage import ledger

    monkeypatch.setattr(ledger, "LOCK_TIMEOUT_S", 0.2)
    async with db.session() as outer:
        await append_event(outer, actor="t", action="a", subject="outer", details={})
        async with db.session() as inner:
            with pytest.raises(LocalProtocolError, match="ledger lock"):
                await append_event(inner, actor="t", action="a", subject="inner", details={})
        await outer.commit()
    assert await _problems(db) == []
