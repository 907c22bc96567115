"""The audit ledger: an append-only hash chain of events in the table ``ledger``.

Theory of operation
-------------------
Each entry has a sequence number ``seq`` (1, 2, 3, ... without gaps) and

    hash = sha256(prev_hash || canonical_json([seq, ts, actor, action, subject, details]))

where ``prev_hash`` is the ``hash`` of entry ``seq - 1`` (64 zeros for entry 1), ``ts`` is the
UTC time in ISO 8601 with microseconds and ``Z``, and canonical JSON has sorted keys, no spaces
and UTF-8 text. :func:`verify_chain` recomputes every hash and link, so a row that was edited,
deleted (a gap in ``seq``), inserted or moved is reported. What a hash chain cannot show on its
own: the removal of the *last* entries, or a rewrite of the whole chain by someone who can
write the database; keeping the head hash elsewhere (e.g. in the daily report) closes that.

Appends are serialised. :func:`append_event` runs inside the caller's transaction (the event
commits or rolls back with the change it describes) and takes a per-event-loop ``asyncio.Lock``
that it holds until that transaction ends (commit, rollback or close), so two coroutines never
read the same last entry. On PostgreSQL it also takes ``pg_advisory_xact_lock`` so that several
recorder processes sharing a database serialise too. On SQLite across processes, ``seq`` being
the primary key is the guard: a process that read a stale last entry tries to insert a ``seq``
that exists and its transaction fails with an ``IntegrityError`` instead of forking the chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from .models import LedgerEntry, utcnow

__all__ = [
    "GENESIS_HASH",
    "append_event",
    "canonical_json",
    "entry_hash",
    "format_ts",
    "last_entry",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
_ADVISORY_LOCK_KEY = 0x5349_5052_4543  # "SIPREC"
_HELD = "siprec_recorder.ledger_lock"

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _loop_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


@event.listens_for(Session, "after_transaction_end")
def _release_on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    lock = session.info.pop(_HELD, None)
    if lock is not None:
        lock.release()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_ts(ts: datetime) -> str:
    """``2026-11-28T17:30:54.123456Z`` (naive input is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    prev_hash: str,
    seq: int,
    ts: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
) -> str:
    """The chain hash of one entry."""
    body = canonical_json([seq, format_ts(ts), actor, action, subject, details])
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


async def last_entry(session: AsyncSession) -> LedgerEntry | None:
    """The entry with the highest ``seq`` (as this session sees it)."""
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))
    return result.scalars().first()


async def append_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Append one event in ``session``'s transaction (flushed, not committed) and return it.

    ``details`` must be JSON-serialisable (it is stored as canonical JSON). The ledger lock is
    held until the caller's transaction ends, so commit (or roll back) promptly.
    """
    details = dict(details or {})
    details_text = canonical_json(details)  # fails early on non-JSON values
    if _HELD not in session.info:
        lock = _loop_lock()
        await lock.acquire()
        session.info[_HELD] = lock
    try:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY}
            )
        last = await last_entry(session)
    except BaseException:
        held = session.info.pop(_HELD, None)
        if held is not None:
            held.release()
        raise
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS_HASH if last is None else last.hash
    ts = now or utcnow()
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    entry = LedgerEntry(
        seq=seq,
        ts=ts,
        actor=actor,
        action=action,
        subject=subject,
        details=details_text,
        prev_hash=prev,
        hash=entry_hash(prev, seq, ts, actor, action, subject, json.loads(details_text)),
    )
    session.add(entry)
    await session.flush()
    return entry


async def verify_chain(session: AsyncSession) -> list[str]:
    """Check the whole chain; one message per problem, ``[]`` when intact."""
    problems: list[str] = []
    expected_seq = 1
    prev_hash = GENESIS_HASH
    result = await session.stream(
        select(
            LedgerEntry.seq,
            LedgerEntry.ts,
            LedgerEntry.actor,
            LedgerEntry.action,
            LedgerEntry.subject,
            LedgerEntry.details,
            LedgerEntry.prev_hash,
            LedgerEntry.hash,
        ).order_by(LedgerEntry.seq)
    )
    async for seq, ts, actor, action, subject, details_text, row_prev, row_hash in result:
        if seq != expected_seq:
            if seq > expected_seq:
                missing = (
                    f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                )
                problems.append(f"ledger: entries {missing} missing (deleted)")
            else:
                problems.append(f"ledger: entry {seq} out of order")
        if row_prev != prev_hash:
            problems.append(
                f"ledger: entry {seq} does not link to the entry before it "
                "(entries inserted, deleted or reordered)"
            )
        try:
            details = json.loads(details_text)
        except (TypeError, ValueError):
            problems.append(f"ledger: entry {seq} has unreadable details (edited)")
        else:
            if entry_hash(row_prev, seq, ts, actor, action, subject, details) != row_hash:
                problems.append(f"ledger: entry {seq} does not match its hash (edited)")
        expected_seq = seq + 1
        prev_hash = row_hash
    return problems
