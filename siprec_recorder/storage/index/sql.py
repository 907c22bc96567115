"""The recording index on SQLAlchemy (SQLite or PostgreSQL): :class:`SqlIndex`.

Theory of operation
-------------------
:class:`SqlIndex` implements :class:`~.protocol.RecordingIndex` on
:class:`~siprec_recorder.storage.db.Database`, and the reads the CLI needs besides.

Life of a row: :meth:`~SqlIndex.create_recording` inserts it with state ``recording`` when the
call starts (so a crash leaves a row that recovery finds with :meth:`~SqlIndex.open_recordings`);
:meth:`~SqlIndex.finish_recording` fills in the file, hash, end and per-leg statistics and sets
``complete``, ``interrupted`` or ``failed``; :meth:`~SqlIndex.mark_interrupted` closes a row
whose media could not be recovered; :meth:`~SqlIndex.record_declined` writes the row of a call
policy refused (no media, a ``reason``). Every state change appends a ledger event
(``recording.started``, ``recording.finished``, ``recording.failed``, ``recording.interrupted``,
``recording.declined``; ``recording.participants_updated`` for a mid-call change) in the same
transaction, so the index and the audit trail cannot disagree.

Search (:meth:`~SqlIndex.search`) is :func:`~.search.filter_recordings`, the one number
search. Results are JSON-ready dicts (times ISO 8601 UTC with ``Z``), loaded with one query for
the recordings plus one ``selectinload`` per child table, never one query per row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from siprec_recorder.errors import LocalProtocolError

from ..db import Database
from ..ledger import append_event, append_events
from ..models import (
    DIRECTIONS,
    RECORDING_STATES,
    DtmfDigit,
    Recording,
    RecordingParticipant,
    RecordingStream,
    new_id,
    utcnow,
)
from .search import filter_recordings
from .types import (
    ANY_NODE,
    FINISHED_STATES,
    DeclinedCall,
    DtmfInfo,
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    RecordingNotFound,
    StreamInfo,
    iso,
)

__all__ = ["SYSTEM_ACTOR", "SqlIndex", "recording_to_dict"]

SYSTEM_ACTOR = "system"


def _participant_values(p: ParticipantInfo | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(p, ParticipantInfo):
        p = ParticipantInfo.from_dict(p)
    return _columns(p, _PARTICIPANT_COLUMNS)


def _participant_row(p: ParticipantInfo | Mapping[str, Any]) -> RecordingParticipant:
    return RecordingParticipant(**_participant_values(p))


def _stream_values(s: StreamInfo | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(s, StreamInfo):
        s = StreamInfo.from_dict(s)
    return _columns(s, _STREAM_COLUMNS)


def _dtmf_values(d: DtmfInfo | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(d, DtmfInfo):
        d = DtmfInfo.from_dict(d)
    return _columns(d, _DTMF_COLUMNS)


def _columns(obj: Any, names: Sequence[str], times: Sequence[str] = ()) -> dict[str, Any]:
    """``obj``'s attributes ``names`` as a dict (a dataclass or an ORM row); ``times`` as ISO."""
    out = {name: getattr(obj, name) for name in names}
    for name in times:
        out[name] = iso(out[name])
    return out


# A child row's columns are its dataclass's fields (the ORM models use the same names).
_PARTICIPANT_COLUMNS = tuple(f.name for f in fields(ParticipantInfo))
_STREAM_COLUMNS = tuple(f.name for f in fields(StreamInfo))
_DTMF_COLUMNS = tuple(f.name for f in fields(DtmfInfo))


def _retention(rec: NewRecording) -> datetime | None:
    if rec.retention_until is not None or rec.retention_years is None:
        return rec.retention_until
    return rec.start + timedelta(days=round(365.25 * rec.retention_years))


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise LocalProtocolError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return direction


def recording_to_dict(r: Recording) -> dict[str, Any]:
    """A loaded ``Recording`` (children loaded) as a JSON-ready dict."""
    return {
        "id": r.id,
        "call_id": r.call_id,
        "siprec_session_id": r.siprec_session_id,
        "state": r.state,
        "reason": r.reason,
        "start": iso(r.start),
        "end": iso(r.end),
        "duration_s": r.duration_s,
        "direction": r.direction,
        "recorded_number": r.recorded_number,
        "other_number": r.other_number,
        "file": r.file,
        "sidecar": r.sidecar,
        "sha256": r.sha256,
        "size_bytes": r.size_bytes,
        "codec": r.codec,
        "sample_rate": r.sample_rate,
        "channels": r.channels,
        "srtp": r.srtp,
        "beep": r.beep,
        "source": r.source,
        "origin": r.origin,
        "key_id": r.key_id,
        "node_id": r.node_id,
        "retention_until": iso(r.retention_until),
        "legal_hold": r.legal_hold,
        "metadata": r.metadata_json,
        "created_at": iso(r.created_at),
        "participants": [
            _columns(p, _PARTICIPANT_COLUMNS, ("joined_at", "left_at")) for p in r.participants
        ],
        "streams": [
            _columns(s, _STREAM_COLUMNS, ("first_packet_at", "last_packet_at")) for s in r.streams
        ],
        "dtmf": [_columns(d, _DTMF_COLUMNS) for d in r.dtmf],
    }


def _with_children(stmt: Select[Any]) -> Select[Any]:
    return stmt.options(
        selectinload(Recording.participants),
        selectinload(Recording.streams),
        selectinload(Recording.dtmf),
    )


_RECORDINGS = cast(Table, Recording.__table__)
_PARTICIPANTS = cast(Table, RecordingParticipant.__table__)
_STREAMS = cast(Table, RecordingStream.__table__)
_DTMF = cast(Table, DtmfDigit.__table__)
_OPEN_STATES = ("recording", "interrupted")  # what finish_recording may close
# executemany: SET is every key of the parameters but ``b_id``.
_FINISH = update(_RECORDINGS).where(
    _RECORDINGS.c.id == bindparam("b_id"),
    # Literal states: an expanding IN cannot be part of an executemany.
    or_(*(_RECORDINGS.c.state == literal_column(f"'{state}'") for state in _OPEN_STATES)),
)
_FINISH_ACTIONS = {
    "complete": "recording.finished",
    "interrupted": "recording.interrupted",
    "failed": "recording.failed",
}


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@dataclass(slots=True)
class _Create:
    """A ``recording`` row to insert, as plain values (built, and checked, by the caller)."""

    rec_id: str
    row: dict[str, Any]
    participants: list[dict[str, Any]]
    details: dict[str, Any]
    action: str = "recording.started"

    @classmethod
    def build(cls, rec: NewRecording) -> _Create:
        rec_id = rec.id or new_id()
        row = {
            "id": rec_id,
            "call_id": rec.call_id,
            "siprec_session_id": rec.siprec_session_id,
            "state": "recording",
            "reason": None,
            "start": rec.start,
            "direction": _check_direction(rec.direction),
            "recorded_number": rec.recorded_number,
            "other_number": rec.other_number,
            "srtp": rec.srtp,
            "beep": rec.beep,
            "source": rec.source,
            "origin": rec.origin,
            "key_id": rec.key_id,
            "node_id": rec.node_id,
            "retention_until": _retention(rec),
            "metadata_json": rec.metadata_json,
            "legal_hold": False,
            "created_at": utcnow(),
        }
        people = [{"recording_id": rec_id, **_participant_values(p)} for p in rec.participants]
        details = {
            "call_id": rec.call_id,
            "recorded_number": rec.recorded_number,
            "other_number": rec.other_number,
            "direction": rec.direction,
            "start": iso(rec.start),
        }
        return cls(rec_id, row, people, details)


@dataclass(slots=True)
class _Finish:
    """How one recording ended, as plain values (built, and checked, by the caller)."""

    rec_id: str
    values: dict[str, Any]
    streams: list[dict[str, Any]]
    dtmf: list[dict[str, Any]]
    participants: list[dict[str, Any]] | None
    details: dict[str, Any]
    action: str

    @classmethod
    def build(cls, rec_id: str, finished: FinishedRecording) -> _Finish:
        if finished.state not in FINISHED_STATES:
            raise LocalProtocolError(
                f"finished state must be one of {FINISHED_STATES}, not {finished.state!r}"
            )
        values: dict[str, Any] = {
            "b_id": rec_id,
            "state": finished.state,
            "reason": finished.reason,
            "end": finished.end,
            "duration_s": finished.duration_s,
            "file": finished.file,
            "sidecar": finished.sidecar,
            "sha256": finished.sha256,
            "size_bytes": finished.size_bytes,
            "codec": finished.codec,
            "sample_rate": finished.sample_rate,
            "channels": finished.channels,
        }
        if finished.retention_until is not None:
            values["retention_until"] = finished.retention_until
        if finished.metadata_json is not None:
            values["metadata_json"] = finished.metadata_json
        people = None
        if finished.participants is not None:
            people = [
                {"recording_id": rec_id, **_participant_values(p)} for p in finished.participants
            ]
        details = {
            "state": finished.state,
            "reason": finished.reason,
            "file": finished.file,
            "sha256": finished.sha256,
            "size_bytes": finished.size_bytes,
            "end": iso(finished.end),
            "duration_s": finished.duration_s,
        }
        return cls(
            rec_id,
            values,
            [{"recording_id": rec_id, **_stream_values(x)} for x in finished.streams],
            [{"recording_id": rec_id, **_dtmf_values(x)} for x in finished.dtmf],
            people,
            details,
            _FINISH_ACTIONS[finished.state],
        )


class SqlIndex:
    """:class:`RecordingIndex` on SQLAlchemy (SQLite or PostgreSQL)."""

    MAX_BATCH = 200  # recordings created or finished per transaction, at most

    def __init__(
        self, db: Database, *, actor: str = SYSTEM_ACTOR, batch_window: float = 0.0
    ) -> None:
        self.db = db
        self.actor = actor
        # Seconds the writer waits before each batch, so that calls starting or ending
        # within it share one transaction (each costs about 15 ms of CPU on SQLite, most of
        # it per transaction, not per row). 0 writes at once.
        self.batch_window = batch_window
        self._queue: list[tuple[_Create | _Finish, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def _load(self, session: AsyncSession, rec_id: str) -> Recording:
        rec = await session.get(Recording, rec_id)
        if rec is None:
            raise LocalProtocolError(f"no recording with id {rec_id!r}")
        return rec

    async def create_recording(self, rec: NewRecording) -> str:
        """Insert the row of a call being recorded (state ``recording``); returns its id.

        Committed (with its ledger event) when this returns; written by the batch writer.
        """
        op = _Create.build(rec)
        await self._submit(op)
        return op.rec_id

    async def finish_recording(self, rec_id: str, finished: FinishedRecording) -> None:
        """Record how the call ended: file, hash, statistics, final state.

        Committed (with its ledger event) when this returns; written by the batch writer.
        Raises :class:`RecordingNotFound` when there is no such row, and
        :class:`~siprec_recorder.errors.LocalProtocolError` when it is already finished.
        """
        await self._submit(_Finish.build(rec_id, finished))

    # -- the batch writer -----------------------------------------------------------------

    async def _submit(self, op: _Create | _Finish) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((op, future))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain(), name="index-writer")
        await future

    async def _drain(self) -> None:
        """Write what is queued, a transaction per batch, until the queue is empty.

        Nothing waits for a batch to fill beyond ``batch_window``: while one transaction
        commits (or the window runs), the calls that start or end meanwhile queue up and go
        together in the next. A batch that fails (one finished
        twice, a full disk) is rolled back and its items retried one transaction each, so
        each caller gets its own outcome.
        """
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.batch_window > 0 and len(self._queue) < self.MAX_BATCH:
                await asyncio.sleep(self.batch_window)
            batch = [
                (op, fut)
                for op, fut in self._queue[: self.MAX_BATCH]
                if not fut.done() and fut.get_loop() is loop
            ]
            del self._queue[: self.MAX_BATCH]
            if not batch:
                continue
            try:
                await self._write([op for op, _ in batch])
            except Exception as batch_error:
                if len(batch) == 1:
                    _settle(batch[0][1], batch_error)
                    continue
                for op, fut in batch:
                    try:
                        await self._write([op])
                    except Exception as exc:
                        _settle(fut, exc)
                    else:
                        _settle(fut, None)
            else:
                for _op, fut in batch:
                    _settle(fut, None)

    async def _write(self, ops: Sequence[_Create | _Finish]) -> None:
        """One transaction: every create, then every finish, then their ledger events."""
        creates = [op for op in ops if isinstance(op, _Create)]
        finishes = [op for op in ops if isinstance(op, _Finish)]
        async with self.db.session() as session:
            if creates:
                await session.execute(insert(_RECORDINGS), [op.row for op in creates])
                people = [p for op in creates for p in op.participants]
                if people:
                    await session.execute(insert(_PARTICIPANTS), people)
            if finishes:
                await self._write_finishes(session, finishes)
            await append_events(
                session, [(self.actor, op.action, op.rec_id, op.details) for op in ops]
            )
            await session.commit()

    async def _write_finishes(self, session: AsyncSession, finishes: Sequence[_Finish]) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        if self.db.engine.dialect.supports_sane_multi_rowcount:
            for op in finishes:  # one executemany per set of columns
                groups.setdefault(tuple(op.values), []).append(op.values)
            batches = list(groups.values())
        else:  # asyncpg: an executemany's row count is not reported
            batches = [[op.values] for op in finishes]
        changed = 0
        for params in batches:
            result = await session.execute(_FINISH, params)
            changed += int(getattr(result, "rowcount", 0) or 0)
        if changed != len(finishes):
            if len(finishes) > 1:
                raise LocalProtocolError("a recording of the batch was not open")
            rec_id = finishes[0].rec_id
            state = await session.scalar(select(Recording.state).where(Recording.id == rec_id))
            if state is None:
                raise RecordingNotFound(f"no recording with id {rec_id!r}")
            raise LocalProtocolError(f"recording {rec_id} is already {state}")
        ids = [op.rec_id for op in finishes]
        await session.execute(delete(_STREAMS).where(_STREAMS.c.recording_id.in_(ids)))
        await session.execute(delete(_DTMF).where(_DTMF.c.recording_id.in_(ids)))
        replaced = [op.rec_id for op in finishes if op.participants is not None]
        if replaced:
            await session.execute(
                delete(_PARTICIPANTS).where(_PARTICIPANTS.c.recording_id.in_(replaced))
            )
        for table, rows in (
            (_STREAMS, [r for op in finishes for r in op.streams]),
            (_DTMF, [r for op in finishes for r in op.dtmf]),
            (_PARTICIPANTS, [r for op in finishes for r in op.participants or ()]),
        ):
            if rows:
                await session.execute(insert(table), rows)

    async def mark_interrupted(
        self, rec_id: str, *, end: datetime | None = None, reason: str | None = None
    ) -> None:
        """Close a ``recording`` row whose media could not be recovered (state ``interrupted``)."""
        async with self.db.session() as session:
            rec = await self._load(session, rec_id)
            if rec.state != "recording":
                raise LocalProtocolError(f"recording {rec_id} is already {rec.state}")
            rec.state = "interrupted"
            rec.reason = reason
            rec.end = end
            if end is not None:
                rec.duration_s = max(0.0, (end - rec.start).total_seconds())
            await session.flush()
            await append_event(
                session,
                actor=self.actor,
                action="recording.interrupted",
                subject=rec_id,
                details={"reason": reason, "end": iso(end), "file": None},
            )
            await session.commit()

    async def record_declined(self, call: DeclinedCall) -> str:
        """Write the row of a call that was not recorded, with the reason; returns its id."""
        rec_id = call.id or new_id()
        async with self.db.session() as session:
            session.add(
                Recording(
                    id=rec_id,
                    call_id=call.call_id,
                    siprec_session_id=call.siprec_session_id,
                    state="declined",
                    reason=call.reason,
                    start=call.start,
                    end=call.start,
                    duration_s=0.0,
                    direction=_check_direction(call.direction),
                    recorded_number=call.recorded_number,
                    other_number=call.other_number,
                    source=call.source,
                    origin=call.origin,
                    metadata_json=call.metadata_json,
                    participants=[_participant_row(p) for p in call.participants],
                )
            )
            await session.flush()
            await append_event(
                session,
                actor=self.actor,
                action="recording.declined",
                subject=rec_id,
                details={
                    "call_id": call.call_id,
                    "reason": call.reason,
                    "recorded_number": call.recorded_number,
                    "other_number": call.other_number,
                    "start": iso(call.start),
                },
            )
            await session.commit()
        return rec_id

    async def update_participants(
        self, rec_id: str, participants: Sequence[ParticipantInfo | Mapping[str, Any]]
    ) -> None:
        """Replace the participant list (the caller passes the full history, left ones too)."""
        infos = [
            p if isinstance(p, ParticipantInfo) else ParticipantInfo.from_dict(p)
            for p in participants
        ]
        async with self.db.session() as session:
            rec = await session.get(
                Recording, rec_id, options=[selectinload(Recording.participants)]
            )
            if rec is None:
                raise LocalProtocolError(f"no recording with id {rec_id!r}")
            rec.participants = [_participant_row(p) for p in infos]
            await session.flush()
            await append_event(
                session,
                actor=self.actor,
                action="recording.participants_updated",
                subject=rec_id,
                details={
                    "participants": [
                        {"participant_id": p.participant_id, "number": p.number} for p in infos
                    ]
                },
            )
            await session.commit()

    async def search(
        self,
        number: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        states: Sequence[str] | None = None,
        among: Any = None,
    ) -> list[dict[str, Any]]:
        """Recordings, newest first, whose start is in ``[since, until)`` and (when ``number``
        is given) where any of the candidate forms is the recorded number, the other number or
        a participant's number; ``among`` (a select of ids) restricts them further."""
        if limit < 0 or offset < 0:
            raise LocalProtocolError("limit and offset must not be negative")
        stmt = filter_recordings(
            select(Recording), number=number, since=since, until=until, states=states, among=among
        )
        stmt = stmt.order_by(Recording.start.desc(), Recording.id).limit(limit).offset(offset)
        async with self.db.session() as session:
            rows = (await session.scalars(_with_children(stmt))).all()
            return [recording_to_dict(r) for r in rows]

    async def exists(self, rec_id: str) -> bool:
        """Whether the index has a row for ``rec_id`` (one indexed lookup, nothing loaded)."""
        async with self.db.session() as session:
            found = await session.scalar(select(Recording.id).where(Recording.id == rec_id))
            return found is not None

    async def get(self, rec_id: str) -> dict[str, Any] | None:
        """One recording as a dict, or ``None``."""
        async with self.db.session() as session:
            stmt = _with_children(select(Recording).where(Recording.id == rec_id))
            row = (await session.scalars(stmt)).first()
            return None if row is None else recording_to_dict(row)

    async def open_recordings(self, node_id: str | None = ANY_NODE) -> list[dict[str, Any]]:
        """Rows still in state ``recording`` (after a crash: the ones to recover), of node
        ``node_id`` (``None``: rows written before nodes had ids; default: every node)."""
        stmt = select(Recording).where(Recording.state == "recording")
        if node_id is None:
            stmt = stmt.where(Recording.node_id.is_(None))
        elif node_id != ANY_NODE:
            stmt = stmt.where(Recording.node_id == node_id)
        stmt = _with_children(stmt.order_by(Recording.start))
        async with self.db.session() as session:
            return [recording_to_dict(r) for r in (await session.scalars(stmt)).all()]

    async def count_by_state(self, since: datetime | None = None) -> dict[str, int]:
        """``{state: count}`` for every state (0 included), of calls started at/after ``since``."""
        stmt = select(Recording.state, func.count()).group_by(Recording.state)
        if since is not None:
            stmt = stmt.where(Recording.start >= since)
        counts = {s: 0 for s in RECORDING_STATES}
        async with self.db.session() as session:
            for state, n in (await session.execute(stmt)).all():
                counts[state] = int(n)
        return counts
