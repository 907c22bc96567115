"""Retention, legal hold and purge: the only code in the product that deletes a recording.

Theory of operation
-------------------
MiFID II (Art. 16(7), Delegated Regulation 2017/565 Art. 76) asks for records kept 5 years,
7 on request, and protected against alteration and early deletion. Here:

* **Retention of a recording** is the latest of (a) its own ``recordings.retention_until``,
  (b) the ``retention_until`` written in its sidecar when it was finished, (c) its start plus
  the configured default (``[storage] retention_years``, calendar years), and (d) every
  per-number rule (``retention_rules``) for a number that takes part in it. Taking the latest
  of every bound means nothing can shorten a recording already made: not an edit of one bound,
  not a lower default in the configuration.
* **Extension** (:func:`extend_recording`, :func:`extend_number`) only ever moves a date later;
  an earlier date is refused with :class:`RetentionError`. A number rule also covers
  recordings made after it.
* **Legal hold** (:func:`change_legal_hold`, which every door goes through: the CLI's
  ``hold``/``release`` by recording or number (:func:`recordings_of_numbers` first), the
  portal's by recording or case; the wrappers :func:`set_hold`, :func:`release_hold`) is
  ``recordings.legal_hold``, and with an object store the
  S3 Object Lock legal hold of the recording's objects too; while it is set nothing deletes
  the recording, whatever its retention. Setting one needs a reason (the case reference),
  kept in the ledger.
* **Purge** (:func:`purge`) deletes the MP3 and the sidecar of each finished recording that
  is past retention and not on hold (and the ``.leg<n>.pcap`` RTP kept beside the MP3 for a
  leg whose codec could not be decoded). The row is *kept* as the disposal record (auditors need
  to see what existed and when it was disposed of): ``state`` becomes ``purged``, ``file`` and
  ``sidecar`` become ``NULL``, ``sha256``, times, numbers and statistics stay, and
  ``retention_until`` is set to the retention that was applied. A ledger event
  ``recording.purged`` records the file, its SHA-256, the retention applied and the state before
  (``complete``, ``interrupted`` or ``failed``, which the completeness report reads back).

  Purge of one recording runs in three steps so that a crash at any point converges:
  (1) one transaction does a conditional ``UPDATE ... SET state='purged' WHERE legal_hold is
  false AND state is still finished`` (a hold set concurrently wins) and appends the ledger
  event; (2) the files are unlinked and the folder fsync'd; (3) ``file``/``sidecar`` are
  cleared. A run that died between (1) and (3) leaves a ``purged`` row that still names its
  file; the next purge finishes it. Declined calls and rows without media have nothing to
  delete and are left alone; rows still ``recording`` are never touched.

Every change appends a ledger event (``storage.ledger.append_event``) in the same transaction
as the change. Time is always an argument (``now``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from siprec_recorder.errors import LocalProtocolError, RecorderError
from siprec_recorder.isotime import utc_iso
from siprec_recorder.storage.cases import case_recording_ids, find_case
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.files import FileLayout, fsync_dir
from siprec_recorder.storage.ledger import append_event
from siprec_recorder.storage.models import Recording, RecordingParticipant
from siprec_recorder.storage.objects import DeleteRefused, ObjectStore
from siprec_recorder.transcription.store import purge_rows as purge_transcript_rows
from siprec_recorder.transcription.store import transcript_of

from .models import RetentionRule

__all__ = [
    "DEFAULT_RETENTION_YEARS",
    "FINISHED_STATES",
    "HOLDABLE_STATES",
    "PURGED_STATE",
    "HoldChange",
    "HoldOutcome",
    "NumberExtension",
    "PurgeItem",
    "PurgeReport",
    "purge_once",
    "RetentionChange",
    "RetentionError",
    "RetentionStatus",
    "add_years",
    "change_legal_hold",
    "extend_number",
    "extend_recording",
    "purge",
    "recordings_in_case",
    "recordings_of_numbers",
    "release_hold",
    "retention_status",
    "retention_until_for",
    "set_hold",
]

DEFAULT_RETENTION_YEARS = 5
FINISHED_STATES: tuple[str, ...] = ("complete", "interrupted", "failed")
PURGED_STATE = "purged"


class RetentionError(RecorderError):
    """A retention, hold or purge request that must be refused (the message says why)."""


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_years(start: datetime, years: int) -> datetime:
    """``start`` plus ``years`` calendar years (29 February becomes 28 February)."""
    start = _aware(start)
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February into a common year
        return start.replace(year=start.year + years, day=28)


def retention_until_for(start: datetime, years: int = DEFAULT_RETENTION_YEARS) -> datetime:
    """The default retention of a recording that started at ``start`` (calendar years)."""
    if years < 1:
        raise LocalProtocolError(f"retention must be at least one year, not {years}")
    return add_years(start, years)


# ---------------------------------------------------------------------------- effective retention


@dataclass(frozen=True, slots=True)
class RetentionStatus:
    """Where a recording's retention comes from, and the result."""

    rec_id: str
    state: str
    start: datetime
    legal_hold: bool
    stored: datetime | None  # recordings.retention_until
    sidecar: datetime | None  # the sidecar's retention_until
    default: datetime  # start + [storage] retention_years
    rules: datetime | None  # latest per-number rule covering the recording
    effective: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rec_id,
            "state": self.state,
            "start": utc_iso(self.start),
            "legal_hold": self.legal_hold,
            "stored": utc_iso(self.stored),
            "sidecar": utc_iso(self.sidecar),
            "default": utc_iso(self.default),
            "rules": utc_iso(self.rules),
            "retention_until": utc_iso(self.effective),
        }


def _numbers_of(rec: Recording) -> set[str]:
    numbers = {n for n in (rec.recorded_number, rec.other_number) if n}
    numbers.update(p.number for p in rec.participants if p.number)
    return numbers


def _sidecar_retention(layout: FileLayout | None, rec: Recording) -> datetime | None:
    if layout is None or not rec.sidecar:
        return None
    try:
        doc = json.loads(layout.absolute(rec.sidecar).read_text(encoding="utf-8"))
        value = doc.get("retention_until")
        if not isinstance(value, str):
            return None
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (OSError, ValueError, LocalProtocolError, AttributeError):
        return None


def _status(
    rec: Recording,
    rules: dict[str, datetime],
    default_years: int,
    layout: FileLayout | None,
) -> RetentionStatus:
    default = retention_until_for(rec.start, default_years)
    stored = None if rec.retention_until is None else _aware(rec.retention_until)
    side = _sidecar_retention(layout, rec)
    covering = [rules[n] for n in _numbers_of(rec) if n in rules]
    by_rule = max(covering) if covering else None
    effective = max(d for d in (default, stored, side, by_rule) if d is not None)
    return RetentionStatus(
        rec_id=rec.id,
        state=rec.state,
        start=_aware(rec.start),
        legal_hold=bool(rec.legal_hold),
        stored=stored,
        sidecar=side,
        default=default,
        rules=by_rule,
        effective=effective,
    )


async def _rules(session: AsyncSession) -> dict[str, datetime]:
    rows = (await session.execute(select(RetentionRule.number, RetentionRule.until))).all()
    return {number: _aware(until) for number, until in rows}


async def _load(session: AsyncSession, rec_id: str) -> Recording:
    rec = await session.get(Recording, rec_id, options=[selectinload(Recording.participants)])
    if rec is None:
        raise RetentionError(f"no recording with id {rec_id!r}")
    return rec


async def retention_status(
    db: Database,
    rec_id: str,
    *,
    default_years: int = DEFAULT_RETENTION_YEARS,
    layout: FileLayout | None = None,
) -> RetentionStatus:
    """The effective retention of one recording and where each bound comes from."""
    async with db.session() as session:
        rec = await _load(session, rec_id)
        return _status(rec, await _rules(session), default_years, layout)


# ---------------------------------------------------------------------------- extension


@dataclass(frozen=True, slots=True)
class RetentionChange:
    """The retention of ``rec_id`` moved from ``before`` (effective) to ``after``."""

    rec_id: str
    before: datetime
    after: datetime


@dataclass(frozen=True, slots=True)
class NumberExtension:
    """A per-number rule set to ``until``; ``extended`` recordings got a later date."""

    number: str
    until: datetime
    previous_rule: datetime | None
    extended: list[RetentionChange]


async def extend_recording(
    db: Database,
    rec_id: str,
    until: datetime,
    *,
    actor: str,
    now: datetime,
    default_years: int = DEFAULT_RETENTION_YEARS,
    layout: FileLayout | None = None,
    reason: str | None = None,
) -> RetentionChange:
    """Keep ``rec_id`` at least until ``until``; refused if that would shorten it."""
    until = _aware(until)
    if until <= _aware(now):
        raise RetentionError(f"{utc_iso(until)} is not in the future")
    async with db.session() as session:
        rec = await _load(session, rec_id)
        if rec.state == PURGED_STATE:
            raise RetentionError(f"recording {rec_id} was purged; its retention cannot change")
        if rec.state == "declined":
            raise RetentionError(f"recording {rec_id} is a declined call: there is no media")
        status = _status(rec, await _rules(session), default_years, layout)
        if until < status.effective:
            raise RetentionError(
                f"recording {rec_id} is kept until {utc_iso(status.effective)}; "
                f"{utc_iso(until)} would shorten it (retention is never shortened)"
            )
        rec.retention_until = until
        await session.flush()
        await append_event(
            session,
            actor=actor,
            action="retention.extended",
            subject=rec_id,
            details={"from": utc_iso(status.effective), "to": utc_iso(until), "reason": reason},
            now=now,
        )
        await session.commit()
    return RetentionChange(rec_id, status.effective, until)


async def extend_number(
    db: Database,
    number: str,
    until: datetime,
    *,
    actor: str,
    now: datetime,
    default_years: int = DEFAULT_RETENTION_YEARS,
    layout: FileLayout | None = None,
    also_match: Sequence[str] = (),
    reason: str | None = None,
) -> NumberExtension:
    """Keep every recording of ``number`` (past and future) at least until ``until``.

    ``number`` is the normalised form the index stores (E.164, or a short code);
    ``also_match`` are other stored forms to match existing recordings by. A rule that already
    says a later date is refused (rules only go up). Existing recordings whose retention is
    earlier get ``retention_until = until``; later ones are left as they are.
    """
    until = _aware(until)
    if until <= _aware(now):
        raise RetentionError(f"{utc_iso(until)} is not in the future")
    forms = sorted({number, *also_match})
    async with db.session() as session:
        rule = await session.get(RetentionRule, number)
        previous = None if rule is None else _aware(rule.until)
        if previous is not None and until < previous:
            raise RetentionError(
                f"number {number} is already kept until {utc_iso(previous)}; "
                f"{utc_iso(until)} would shorten it (retention is never shortened)"
            )
        if rule is None:
            session.add(RetentionRule(number=number, until=until, set_by=actor, set_at=now))
        else:
            rule.until = until
            rule.set_by = actor
            rule.set_at = now
        await session.flush()
        await append_event(
            session,
            actor=actor,
            action="retention.number_rule",
            subject=number,
            details={"from": utc_iso(previous), "to": utc_iso(until), "reason": reason},
            now=now,
        )
        rules = await _rules(session)
        stmt = (
            select(Recording)
            .options(selectinload(Recording.participants))
            .where(
                Recording.state.in_(FINISHED_STATES + ("recording",)),
                or_(
                    Recording.recorded_number.in_(forms),
                    Recording.other_number.in_(forms),
                    Recording.id.in_(
                        select(RecordingParticipant.recording_id).where(
                            RecordingParticipant.number.in_(forms)
                        )
                    ),
                ),
            )
            .order_by(Recording.start)
        )
        extended: list[RetentionChange] = []
        for rec in (await session.scalars(stmt)).all():
            # The effective date before this rule: recompute without the new rule's raise.
            before_rules = dict(rules)
            if previous is None:
                before_rules.pop(number, None)
            else:
                before_rules[number] = previous
            status = _status(rec, before_rules, default_years, layout)
            if status.effective >= until:
                continue
            rec.retention_until = until
            extended.append(RetentionChange(rec.id, status.effective, until))
            await append_event(
                session,
                actor=actor,
                action="retention.extended",
                subject=rec.id,
                details={
                    "from": utc_iso(status.effective),
                    "to": utc_iso(until),
                    "number": number,
                    "reason": reason,
                },
                now=now,
            )
        await session.commit()
    return NumberExtension(number, until, previous, extended)


# ---------------------------------------------------------------------------- legal hold


@dataclass(frozen=True, slots=True)
class HoldChange:
    """``legal_hold`` of ``rec_id`` is now ``held`` (``changed`` False: it already was)."""

    rec_id: str
    held: bool
    changed: bool


async def _set_hold_flag(
    db: Database, rec_id: str, held: bool, *, actor: str, reason: str | None, now: datetime
) -> HoldChange:
    async with db.session() as session:
        rec = await _load(session, rec_id)
        if rec.state == PURGED_STATE:
            raise RetentionError(f"recording {rec_id} was purged; there is nothing to hold")
        if bool(rec.legal_hold) == held:
            return HoldChange(rec_id, held, False)
        rec.legal_hold = held
        await session.flush()
        await append_event(
            session,
            actor=actor,
            action="legal_hold.set" if held else "legal_hold.released",
            subject=rec_id,
            details={"reason": reason},
            now=now,
        )
        await session.commit()
    return HoldChange(rec_id, held, True)


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    """What one legal hold (or release) did: the index changes, and the object store's
    errors (one line each; the index hold stands, and asking again carries it to the store)."""

    changes: list[HoldChange]
    store_errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": [c.rec_id for c in self.changes if c.changed],
            "unchanged": [c.rec_id for c in self.changes if not c.changed],
            "store_errors": list(self.store_errors),
        }


async def change_legal_hold(
    db: Database,
    rec_ids: Sequence[str],
    *,
    held: bool,
    actor: str,
    now: datetime,
    reason: str | None = None,
    store: ObjectStore | None = None,
    retention_years: int = DEFAULT_RETENTION_YEARS,
) -> HoldOutcome:
    """Put ``rec_ids`` on legal hold (``held``) or release them: the one way a hold changes,
    whoever asks (the CLI's ``hold``/``release``, the portal's recording and case holds).

    For each recording, in a transaction of its own: ``recordings.legal_hold`` and one ledger
    event ``legal_hold.set`` / ``legal_hold.released`` (``actor``, ``{"reason": ...}``) when
    it changed. Then the recordings' objects get the store's own hold: with an object store
    (``store`` not local) the S3 Object Lock legal hold of the MP3 and sidecar is set to what
    the index now says (for every recording asked about, changed or not, so asking again
    repairs a store that was unreachable the first time); a folder keeps no hold of its own,
    the index flag is the protection. A recording not uploaded yet gets its hold at upload.
    A hold needs a reason; an unknown or purged recording is a :class:`RetentionError`
    (raised before anything changes when it is the only one asked about)."""
    if held and (not reason or not reason.strip()):
        raise RetentionError("a legal hold needs a reason (case reference)")
    why = reason.strip() if reason else reason
    changes = [
        await _set_hold_flag(db, rec_id, held, actor=actor, reason=why, now=now)
        for rec_id in rec_ids
    ]
    errors: list[str] = []
    if store is not None and changes:
        from siprec_recorder.storage.uploader import sync_protection

        errors = await sync_protection(
            db, store, [c.rec_id for c in changes], retention_years=retention_years
        )
    return HoldOutcome(changes, errors)


async def set_hold(
    db: Database,
    rec_id: str,
    *,
    actor: str,
    reason: str,
    now: datetime,
    store: ObjectStore | None = None,
    retention_years: int = DEFAULT_RETENTION_YEARS,
) -> HoldChange:
    """Put ``rec_id`` on legal hold (nothing deletes it until released). Audited. The store's
    errors are dropped here: callers that have a store use :func:`change_legal_hold`."""
    outcome = await change_legal_hold(
        db,
        [rec_id],
        held=True,
        actor=actor,
        reason=reason,
        now=now,
        store=store,
        retention_years=retention_years,
    )
    return outcome.changes[0]


async def release_hold(
    db: Database,
    rec_id: str,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    store: ObjectStore | None = None,
    retention_years: int = DEFAULT_RETENTION_YEARS,
) -> HoldChange:
    """Release the legal hold of ``rec_id``. Audited (see :func:`change_legal_hold`)."""
    outcome = await change_legal_hold(
        db,
        [rec_id],
        held=False,
        actor=actor,
        reason=reason,
        now=now,
        store=store,
        retention_years=retention_years,
    )
    return outcome.changes[0]


HOLDABLE_STATES: tuple[str, ...] = FINISHED_STATES + ("recording",)


async def _ids_matching(
    session: AsyncSession, numbers: Sequence[str], since: datetime | None, until: datetime | None
) -> list[str]:
    forms = sorted({n for n in numbers if n})
    if not forms:
        return []
    stmt = select(Recording.id).where(
        Recording.state.in_(HOLDABLE_STATES),
        or_(
            Recording.recorded_number.in_(forms),
            Recording.other_number.in_(forms),
            Recording.id.in_(
                select(RecordingParticipant.recording_id).where(
                    RecordingParticipant.number.in_(forms)
                )
            ),
        ),
    )
    if since is not None:
        stmt = stmt.where(Recording.start >= since)
    if until is not None:
        stmt = stmt.where(Recording.start < until)
    return list((await session.scalars(stmt.order_by(Recording.start, Recording.id))).all())


async def recordings_of_numbers(
    db: Database,
    numbers: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """The ids of the recordings a hold of ``numbers`` covers (any stored form; recorded,
    other or participant; started in ``[since, until)``; not purged), oldest first."""
    async with db.session() as session:
        return await _ids_matching(session, numbers, since, until)


async def recordings_in_case(db: Database, case: str | int) -> list[str]:
    """The ids of the recordings a hold of ``case`` (id or title) covers: those carrying the
    case's label, not purged, oldest first. :class:`RetentionError` if there is no such case."""
    async with db.session() as session:
        found = await find_case(session, case)
        if found is None:
            raise RetentionError(f"no case {case!r}")
        stmt = select(Recording.id).where(
            Recording.state.in_(HOLDABLE_STATES), Recording.id.in_(case_recording_ids(found))
        )
        return list((await session.scalars(stmt.order_by(Recording.start, Recording.id))).all())


# ---------------------------------------------------------------------------- purge


@dataclass(frozen=True, slots=True)
class PurgeItem:
    """One recording disposed of (or, in a dry run, that would be)."""

    rec_id: str
    file: str | None
    sha256: str | None
    state_before: str
    start: datetime
    retention_until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rec_id,
            "file": self.file,
            "sha256": self.sha256,
            "state_before": self.state_before,
            "start": utc_iso(self.start),
            "retention_until": utc_iso(self.retention_until),
        }


@dataclass(slots=True)
class PurgeReport:
    """What a purge run did."""

    now: datetime
    dry_run: bool
    purged: list[PurgeItem] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # past retention, kept for a legal hold
    errors: list[str] = field(default_factory=list)
    # The object store would not delete (Object Lock): "id: reason"; retried next run.
    refused: list[str] = field(default_factory=list)
    busy: str | None = None  # another purge was running: this one did nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": utc_iso(self.now),
            "dry_run": self.dry_run,
            "purged": [p.to_dict() for p in self.purged],
            "held": list(self.held),
            "errors": list(self.errors),
            "refused": list(self.refused),
            "busy": self.busy,
        }


PURGE_JOB = "retention-purge"


async def purge_once(
    db: Database,
    layout: FileLayout,
    now: datetime,
    *,
    runner: str,
    hold_seconds: float = 6 * 3600,
    not_before: float | None = None,
    **kwargs: Any,
) -> PurgeReport:
    """:func:`purge`, run once across every node and CLI at a time (the ``retention-purge``
    job in ``cluster_jobs``): a second purge started meanwhile does nothing and says so.
    ``not_before`` (epoch seconds): skip if a purge already ran after it (the schedule)."""
    from siprec_recorder.cluster.lease import NodeLease

    at = _aware(now).timestamp()
    lease = NodeLease(db, runner, clock=lambda: at)
    if kwargs.get("dry_run"):
        return await purge(db, layout, now, **kwargs)
    if not await lease.claim_job(PURGE_JOB, hold_seconds=hold_seconds, not_before=not_before):
        report = PurgeReport(now=_aware(now), dry_run=False)
        report.busy = "another purge is running or has just run"
        return report
    report = PurgeReport(now=_aware(now), dry_run=False)
    try:
        report = await purge(db, layout, now, **kwargs)
    finally:
        await lease.finish_job(
            PURGE_JOB,
            f"{len(report.purged)} purged, {len(report.held)} held, {len(report.errors)} errors",
        )
    return report


def _unlink_recording_files(layout: FileLayout, rels: Iterable[str]) -> None:
    """Delete the given files (missing is fine), fsync their folders, drop empty folders."""
    folders: set[Path] = set()
    for rel in rels:
        path = layout.absolute(rel)
        path.unlink(missing_ok=True)
        folders.add(path.parent)
    root = layout.root.resolve()
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)
        current = folder
        while current != root and current.is_relative_to(root):
            try:
                current.rmdir()  # only succeeds when empty
            except OSError:
                break
            fsync_dir(current.parent)
            current = current.parent


async def purge(
    db: Database,
    layout: FileLayout,
    now: datetime,
    *,
    default_years: int = DEFAULT_RETENTION_YEARS,
    actor: str = "system",
    dry_run: bool = False,
    batch_size: int = 500,
    store: Any = None,
) -> PurgeReport:
    """Delete the media of every finished recording past retention and not on legal hold
    (from the folder, and from ``store`` when it is an object store)."""
    now = _aware(now)
    report = PurgeReport(now=now, dry_run=dry_run)
    # Cheap SQL pre-filter; a superset of what is due (365 days <= one calendar year), exact
    # dates are checked in Python. Rows already 'purged' but still naming a file are
    # unfinished purges from an interrupted run.
    floor = now - timedelta(days=365 * default_years)
    due_filter = or_(
        and_(
            Recording.state.in_(FINISHED_STATES),
            or_(Recording.file.is_not(None), Recording.sidecar.is_not(None)),
            or_(Recording.retention_until <= now, Recording.start <= floor),
        ),
        and_(
            Recording.state == PURGED_STATE,
            or_(Recording.file.is_not(None), Recording.sidecar.is_not(None)),
        ),
    )
    async with db.session() as session:
        rules = await _rules(session)
    after: tuple[datetime, str] | None = None
    while True:  # keyset pages of batch_size, oldest first: memory stays flat
        stmt = select(Recording).options(selectinload(Recording.participants)).where(due_filter)
        if after is not None:
            stmt = stmt.where(
                or_(
                    Recording.start > after[0],
                    and_(Recording.start == after[0], Recording.id > after[1]),
                )
            )
        stmt = stmt.order_by(Recording.start, Recording.id).limit(batch_size)
        async with db.session() as session:
            candidates = list((await session.scalars(stmt)).all())
        if not candidates:
            break
        after = (candidates[-1].start, candidates[-1].id)
        for rec in candidates:
            await _purge_candidate(db, layout, rec, rules, report, default_years, actor, now, store)
    return report


async def _purge_candidate(
    db: Database,
    layout: FileLayout,
    rec: Recording,
    rules: dict[str, datetime],
    report: PurgeReport,
    default_years: int,
    actor: str,
    now: datetime,
    store: Any = None,
) -> None:
    if rec.state == PURGED_STATE:  # a purge cut short: finish it
        due = PurgeItem(
            rec.id,
            rec.file,
            rec.sha256,
            PURGED_STATE,
            _aware(rec.start),
            _aware(rec.retention_until) if rec.retention_until else now,
        )
    else:
        status = await _to_thread_status(rec, rules, default_years, layout)
        if status.effective > now:
            return
        if rec.legal_hold:
            report.held.append(rec.id)
            return
        due = PurgeItem(rec.id, rec.file, rec.sha256, rec.state, status.start, status.effective)
    if report.dry_run:
        report.purged.append(due)
        return
    try:
        done = await _purge_one(db, layout, rec, due, actor=actor, now=now, store=store)
    except DeleteRefused as exc:  # the row keeps naming the object; the next run retries
        report.refused.append(f"{rec.id}: {exc}")
        return
    except Exception as exc:  # one bad file must not stop the run; reported, exit != 0
        report.errors.append(f"{rec.id}: {type(exc).__name__}: {exc}")
        return
    if done == "held":
        report.held.append(rec.id)
    elif done == "purged":
        report.purged.append(due)


async def _to_thread_status(
    rec: Recording, rules: dict[str, datetime], default_years: int, layout: FileLayout
) -> RetentionStatus:
    return await asyncio.to_thread(_status, rec, rules, default_years, layout)


async def _purge_one(
    db: Database,
    layout: FileLayout,
    rec: Recording,
    due: PurgeItem,
    *,
    actor: str,
    now: datetime,
    store: Any = None,
) -> str:
    file, sidecar = rec.file, rec.sidecar
    if due.state_before != PURGED_STATE:
        # Step 1: the decision and its ledger entry, atomically; a concurrent hold wins.
        async with db.session() as session:
            result = await session.execute(
                update(Recording)
                .where(
                    Recording.id == rec.id,
                    Recording.state == due.state_before,
                    Recording.legal_hold.is_(False),
                )
                .values(state=PURGED_STATE, retention_until=due.retention_until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                # A hold set meanwhile wins; otherwise another run got there first, and
                # that run reports it (counting it here too would count it twice).
                hold = await session.scalar(
                    select(Recording.legal_hold).where(Recording.id == rec.id)
                )
                return "held" if hold else "raced"
            await append_event(
                session,
                actor=actor,
                action="recording.purged",
                subject=rec.id,
                details={
                    "file": file,
                    "sidecar": sidecar,
                    "sha256": rec.sha256,
                    "size_bytes": rec.size_bytes,
                    "key_id": rec.key_id,
                    "start": utc_iso(rec.start),
                    "state_before": due.state_before,
                    "retention_until": utc_iso(due.retention_until),
                    "reason": "retention expired",
                },
                now=now,
            )
            # What was said goes with the recording, in the same decision.
            await purge_transcript_rows(session, rec.id)
            await session.commit()
    # Step 2: the files (with the RTP kept for legs the MP3 could not hold, the transcript).
    rels = [r for r in (file, sidecar) if r]
    if file:
        rels += await asyncio.to_thread(layout.raw_rtp_files, file)
        rels.append(transcript_of(file))
    await asyncio.to_thread(_unlink_recording_files, layout, rels)
    if store is not None and not store.is_local:
        # The MP3 last: a sidecar never outlives it. Refusals leave the row as it is.
        for rel in sorted(rels, key=lambda r: r == file):
            await store.delete(rel)
    # Step 3: the row no longer names them.
    async with db.session() as session:
        await session.execute(
            update(Recording)
            .where(Recording.id == rec.id, Recording.state == PURGED_STATE)
            .values(file=None, sidecar=None)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return "purged"
