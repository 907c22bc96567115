"""The audit ledger: an append-only hash chain of events in the table ``ledger``.

Theory of operation
-------------------
Each entry has a sequence number ``seq`` (1, 2, 3, ... without gaps) and

    hash = sha256(prev_hash || canonical_json([seq, ts, actor, action, subject, details]))

where ``prev_hash`` is the ``hash`` of entry ``seq - 1`` (64 zeros for entry 1), ``ts`` is the
UTC time in ISO 8601 with microseconds and ``Z``, and canonical JSON has sorted keys, no spaces
and UTF-8 text. :func:`verify_chain` recomputes every hash and link, so a row that was edited,
deleted (a gap in ``seq``), inserted or moved is reported. What a hash chain cannot show: a rewrite
of the whole chain by someone who can write the database; keeping the head hash elsewhere
(e.g. in a daily report) closes that.

Appends are serialised. :func:`append_event` runs inside the caller's transaction (the event
commits or rolls back with the change it describes). In one process it takes a per-event-loop
``asyncio.Lock`` held until that transaction ends (commit, rollback or close), so coroutines
queue without busy-waiting on the database. Across processes (a CLI beside the server, several
nodes on one PostgreSQL) the guard is the one-row table ``ledger_head``: the append first
updates that row, which takes SQLite's write lock or PostgreSQL's row lock until commit, and
only then reads the last entry; so no two transactions ever extend the same entry. Should
anything still race, ``seq`` is the primary key and the loser fails with ``IntegrityError``
rather than forking the chain. ``ledger_head`` also names the last entry, so
:func:`verify_chain` notices entries cut from the end (unless the head was edited to match).

Do not append from two sessions in one task at once: the second would wait for the first's
transaction to end, which never happens; it fails after :data:`LOCK_TIMEOUT_S` with
:class:`~siprec_recorder.errors.LocalProtocolError` instead of hanging.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from siprec_recorder.errors import LocalProtocolError

from .models import LedgerEntry, LedgerHead, utcnow

__all__ = [
    "GENESIS_HASH",
    "LOCK_TIMEOUT_S",
    "append_event",
    "append_events",
    "canonical_json",
    "entry_hash",
    "format_ts",
    "last_entry",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
LOCK_TIMEOUT_S = 60.0  # a transaction holding the ledger lock longer than this is a bug
_HELD = "siprec_recorder.ledger_lock"
_ENTRIES = cast(Table, LedgerEntry.__table__)
_HEAD = cast(Table, LedgerHead.__table__)

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
    """Append one event in ``session``'s transaction (written, not committed); the entry as
    written (a detached ``LedgerEntry``).

    ``details`` must be JSON-serialisable (it is stored as canonical JSON). The ledger lock is
    held until the caller's transaction ends, so commit (or roll back) promptly.
    """
    (row,) = await _append(session, [(actor, action, subject, details or {})], now)
    return LedgerEntry(**row)


async def append_events(
    session: AsyncSession,
    events: Sequence[tuple[str, str, str, Mapping[str, Any]]],
    *,
    now: datetime | None = None,
) -> list[tuple[int, str]]:
    """Append many ``(actor, action, subject, details)`` events in ``session``'s transaction.

    The same chain as one :func:`append_event` per event, in that order, but written with one
    multi-row insert and one head update: the index's batch writer ends hundreds of
    recordings a second this way. Returns ``(seq, hash)`` of each new entry.
    """
    return [(row["seq"], row["hash"]) for row in await _append(session, events, now)]


async def _append(
    session: AsyncSession,
    events: Sequence[tuple[str, str, str, Mapping[str, Any]]],
    now: datetime | None,
) -> list[dict[str, Any]]:
    """Insert the entries of ``events`` (one statement) and move the head; their rows."""
    if not events:
        return []
    texts = [canonical_json(dict(details)) for _a, _b, _c, details in events]  # fails early
    seq, prev = await _claim(session)
    ts = _utc(now or utcnow())
    rows: list[dict[str, Any]] = []
    for (actor, action, subject, _details), text in zip(events, texts, strict=True):
        digest = entry_hash(prev, seq, ts, actor, action, subject, json.loads(text))
        rows.append(
            {
                "seq": seq,
                "ts": ts,
                "actor": actor,
                "action": action,
                "subject": subject,
                "details": text,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
        seq += 1
    await session.execute(insert(_ENTRIES), rows)
    await session.execute(
        update(_HEAD).where(_HEAD.c.id == 1).values(seq=rows[-1]["seq"], hash=rows[-1]["hash"])
    )
    return rows


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


async def _claim(session: AsyncSession) -> tuple[int, str]:
    """Take the ledger lock for ``session``'s transaction; the next ``(seq, prev_hash)``."""
    if _HELD not in session.info:
        lock = _loop_lock()
        try:
            await asyncio.wait_for(lock.acquire(), LOCK_TIMEOUT_S)
        except TimeoutError:
            raise LocalProtocolError(
                f"ledger lock not released for {LOCK_TIMEOUT_S:.0f} s: a transaction that "
                "appended to the ledger is still open (two sessions appending in one task?)"
            ) from None
        session.info[_HELD] = lock
    try:
        claimed = await session.execute(
            update(LedgerHead).where(LedgerHead.id == 1).values(seq=LedgerHead.seq)
        )
        last = (
            await session.execute(
                select(LedgerEntry.seq, LedgerEntry.hash).order_by(LedgerEntry.seq.desc()).limit(1)
            )
        ).first()
        if getattr(claimed, "rowcount", 0) != 1:
            if last is not None:
                # Entries without a head: the head was removed. Refuse rather than hide it.
                raise LocalProtocolError("ledger_head row missing: the ledger needs checking")
            # A schema made without Database.open() (create_all): start the head here.
            session.add(LedgerHead(id=1, seq=0, hash=GENESIS_HASH))
            await session.flush()
    except BaseException:
        held = session.info.pop(_HELD, None)
        if held is not None:
            held.release()
        raise
    if last is None:
        return 1, GENESIS_HASH
    return int(last[0]) + 1, str(last[1])


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
    head = (
        await session.execute(select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.id == 1))
    ).first()
    last_seq = expected_seq - 1
    if head is None:
        problems.append("ledger: head record missing")
    elif head[0] > last_seq:
        problems.append(
            f"ledger: head names entry {head[0]} but the chain ends at {last_seq} "
            "(entries deleted from the end)"
        )
    elif (head[0], head[1]) != (last_seq, prev_hash):
        problems.append(
            f"ledger: head names entry {head[0]} but the chain ends at {last_seq} "
            "(entries added behind the ledger's back, or head edited)"
        )
    return problems
