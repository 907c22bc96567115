"""Reconciliation: the operator's call records against what the recorder did with each call.

Theory of operation
-------------------
For every call of a CDR file (see :mod:`.cdr`) the policy engine is asked whether that call
had to be recorded at the moment it started (:meth:`PolicyEngine.evaluate`: the firm's
numbers, their schedules and modes, the emergency list, ``unknown_numbers``), exactly as it
answers an INVITE but without counting anything. Calls that did not have to be recorded are
counted by reason and go no further.

Each regulated call is then matched against the sessions the recorder saw, read with the
completeness report's own query (:func:`siprec_recorder.compliance.report.completeness`)
over the file's period widened by ``match_window_s``: a session matches when its recorded
and other numbers are the call's two numbers and it started within ``match_window_s`` of
the call's start; the closest unused one wins, so each session answers one call at most.

Categories, one per regulated call:

* ``recorded``: a finished recording whose length is within ``tolerance_s`` of the call's;
* ``short``: a recording shorter than the call by more than ``tolerance_s`` (media lost, an
  SRC that forked late or stopped early, a recording interrupted by a crash);
* ``declined``: the recorder saw the call and refused it, with the reason it gave at the time
  (the policy as it stood then, the disk floor, ...);
* ``failed``: the recorder accepted the call but has no usable recording (no media, SRTP that
  never authenticated, a finaliser failure, or still ``recording`` long after the call ended);
  a "complete" file in which no stream received a single packet is failed too: silence the
  length of the call is not a recording of it;
* ``never_offered``: the recorder has no trace of the call: the SBC never forked it, forked it
  elsewhere, or the INVITE never arrived.

All but ``recorded`` are exceptions. The policy engine keeps no history: "had to be
recorded" is judged with the policy as it is when reconciliation runs, while a ``declined``
row keeps the reason the recorder had at the time -- the report shows both.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from siprec_recorder.compliance.report import SessionLine, completeness
from siprec_recorder.isotime import utc_iso
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.models import RecordingStream

from .cdr import CdrCall, CdrFile, RowError

__all__ = [
    "CATEGORIES",
    "EXCEPTION_CATEGORIES",
    "Reconciled",
    "ReconcileOptions",
    "ReconciliationReport",
    "exceptions_csv",
    "reconcile_calls",
]

EXCEPTION_CATEGORIES: tuple[str, ...] = ("never_offered", "short", "declined", "failed")
CATEGORIES: tuple[str, ...] = ("recorded", *EXCEPTION_CATEGORIES)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    """How strict the match is (``[reconcile]`` in the configuration)."""

    tolerance_s: float = 5.0
    match_window_s: float = 10.0
    #: A session still ``recording`` this long after the call's end counts as failed.
    in_progress_grace_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One regulated call and what became of it."""

    category: str
    call: CdrCall
    session: SessionLine | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        s = self.session
        return {
            "category": self.category,
            "cdr": self.call.to_dict(),
            "recording_id": s.rec_id if s is not None else None,
            "reason": self.reason,
            "recorded_duration_s": s.duration_s if s is not None else None,
        }


@dataclass(slots=True)
class ReconciliationReport:
    """The outcome of one reconciliation run."""

    run_id: str
    source: str
    layout: str
    created_at: datetime
    options: ReconcileOptions
    rows: int = 0
    row_errors: list[RowError] = field(default_factory=list)
    not_required: dict[str, int] = field(default_factory=dict)
    results: list[Reconciled] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    ledger_head: tuple[int, str] | None = None

    @property
    def exceptions(self) -> list[Reconciled]:
        return [r for r in self.results if r.category != "recorded"]

    @property
    def counts(self) -> dict[str, int]:
        counts = {c: 0 for c in CATEGORIES}
        for r in self.results:
            counts[r.category] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "run_id": self.run_id,
            "file": self.source,
            "layout": self.layout,
            "created_at": utc_iso(self.created_at),
            "period": {"since": utc_iso(self.since), "until": utc_iso(self.until)},
            "rows": self.rows,
            "bad_rows": len(self.row_errors),
            "row_errors": [e.to_dict() for e in self.row_errors],
            "calls": len(self.results) + sum(self.not_required.values()),
            "not_required": sum(self.not_required.values()),
            "not_required_by_reason": dict(sorted(self.not_required.items())),
            "required": len(self.results),
            **counts,
            "exceptions": len(self.exceptions),
            "tolerance_s": self.options.tolerance_s,
            "match_window_s": self.options.match_window_s,
            "ledger_head": None
            if self.ledger_head is None
            else {"seq": self.ledger_head[0], "hash": self.ledger_head[1]},
        }

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "exceptions": [r.to_dict() for r in self.exceptions]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def exceptions_csv(self) -> str:
        """One line per exception, for a spreadsheet or a ticket."""
        return exceptions_csv(r.to_dict() for r in self.exceptions)

    def to_table(self) -> str:
        s = self.summary()
        lines = [
            f"Reconciliation of {self.source} ({self.layout} layout), "
            f"{s['period']['since']} to {s['period']['until']}",
            f"{s['rows']} rows: {s['calls']} calls read, {s['bad_rows']} bad rows; "
            f"{s['required']} had to be recorded, {s['not_required']} did not",
            f"recorded {s['recorded']}, short {s['short']}, declined {s['declined']}, "
            f"failed {s['failed']}, never offered {s['never_offered']}",
        ]
        for reason, n in s["not_required_by_reason"].items():
            lines.append(f"  not required, {reason}: {n}")
        if self.exceptions:
            lines += [
                "",
                f"{'category':<14}  {'line':>6}  {'start (UTC)':<20}  {'caller':<16}  "
                f"{'callee':<16}  {'cdr s':>7}  {'rec s':>7}  {'recording':<32}  reason",
            ]
            for r in self.exceptions:
                rec = r.session
                secs = "" if rec is None or rec.duration_s is None else f"{rec.duration_s:7.1f}"
                lines.append(
                    f"{r.category:<14}  {r.call.line:>6}  "
                    f"{r.call.start.astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
                    f"{r.call.caller:<16}  {r.call.callee:<16}  {r.call.duration_s:7.1f}  "
                    f"{secs:>7}  "
                    f"{rec.rec_id if rec else '-':<32}  {r.reason or ''}"
                )
        for e in self.row_errors:
            lines.append(f"bad row, {e}")
        if self.ledger_head is not None:
            lines += [
                "",
                f"audit ledger head: entry {self.ledger_head[0]}, sha256 {self.ledger_head[1]}",
            ]
        return "\n".join(lines) + "\n"


def exceptions_csv(exceptions: Iterable[dict[str, Any]]) -> str:
    """The CSV of exceptions as :meth:`Reconciled.to_dict` gives them (or as a run keeps them)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        [
            "category",
            "line",
            "start",
            "end",
            "caller",
            "callee",
            "cdr_duration_s",
            "recording_id",
            "recorded_duration_s",
            "reason",
        ]
    )
    for d in exceptions:
        c = d.get("cdr") or {}
        recorded = d.get("recorded_duration_s")
        w.writerow(
            [
                d.get("category"),
                c.get("line"),
                c.get("start"),
                c.get("end"),
                _csv_safe(str(c.get("caller") or "")),
                _csv_safe(str(c.get("callee") or "")),
                c.get("duration_s"),
                d.get("recording_id") or "",
                "" if recorded is None else recorded,
                _csv_safe(str(d.get("reason") or "")),
            ]
        )
    return out.getvalue()


def _csv_safe(value: str) -> str:
    # A cell a spreadsheet would run as a formula is quoted with an apostrophe.
    return "'" + value if value[:1] in ("=", "@", "-") else value


def _categorise(
    call: CdrCall,
    s: SessionLine,
    options: ReconcileOptions,
    now: datetime,
    media: tuple[int, int] | None,
) -> tuple[str, str | None]:
    if s.outcome == "declined":
        return "declined", s.reason or "unspecified"
    if s.outcome == "failed":
        return "failed", s.reason or "unspecified"
    if s.outcome == "in-progress":
        if now - call.end > timedelta(seconds=options.in_progress_grace_s):
            return "failed", "still marked as recording long after the call ended"
        return "recorded", "in progress"
    if media is not None and media[0] > 0 and media[1] == 0:
        # a file of silence the length of the call is not a recording of it
        return "failed", "no media received"
    recorded = s.duration_s or 0.0
    if call.duration_s - recorded > options.tolerance_s:
        gap = call.duration_s - recorded
        why = f"recording {recorded:.1f} s of a {call.duration_s:.1f} s call ({gap:.1f} s missing)"
        if s.outcome == "interrupted":
            why += f"; interrupted: {s.reason or 'unspecified'}"
        return "short", why
    return "recorded", s.reason if s.outcome == "interrupted" else None


async def _media_received(db: Database, rec_ids: list[str]) -> dict[str, tuple[int, int]]:
    """(streams, packets received on all of them) of each recording."""
    out: dict[str, tuple[int, int]] = {}
    async with db.session() as session:
        for i in range(0, len(rec_ids), _CHUNK):
            rows = await session.execute(
                select(
                    RecordingStream.recording_id,
                    func.count(),
                    func.coalesce(func.sum(RecordingStream.packets_received), 0),
                )
                .where(RecordingStream.recording_id.in_(rec_ids[i : i + _CHUNK]))
                .group_by(RecordingStream.recording_id)
            )
            for rec_id, streams, received in rows.all():
                out[rec_id] = (int(streams), int(received))
    return out


def _key(numbers: Sequence[str | None]) -> frozenset[str]:
    return frozenset(n for n in numbers if n)


async def reconcile_calls(
    db: Database,
    policy: Any,
    cdr: CdrFile,
    options: ReconcileOptions | None = None,
    *,
    now: datetime | None = None,
) -> ReconciliationReport:
    """Reconcile the calls of ``cdr`` against the index (see the module docstring).

    ``policy`` is a :class:`~siprec_recorder.policy.engine.PolicyEngine` (anything with its
    ``evaluate(aors, at)``).
    """
    options = options or ReconcileOptions()
    now = now or datetime.now(UTC)
    report = ReconciliationReport(
        run_id=uuid.uuid4().hex,
        source=cdr.path.rsplit("/", 1)[-1],
        layout=cdr.layout.name,
        created_at=now,
        options=options,
        rows=len(cdr.calls) + len(cdr.errors),
        row_errors=list(cdr.errors),
    )
    required: list[CdrCall] = []
    for call in cdr.calls:
        decision = await policy.evaluate([f"tel:{call.caller}", f"tel:{call.callee}"], call.start)
        if decision.record:
            required.append(call)
        else:
            report.not_required[decision.reason] = report.not_required.get(decision.reason, 0) + 1
    if cdr.calls:
        report.since = min(c.start for c in cdr.calls)
        report.until = max(c.end for c in cdr.calls)
    if not required:
        return report
    window = timedelta(seconds=options.match_window_s)
    since = min(c.start for c in required) - window
    until = max(c.start for c in required) + window + timedelta(microseconds=1)
    sessions = await completeness(db, since, until)
    report.ledger_head = sessions.ledger_head
    by_numbers: dict[frozenset[str], list[SessionLine]] = {}
    for s in sessions.sessions:
        key = _key([s.recorded_number, s.other_number])
        if key:
            by_numbers.setdefault(key, []).append(s)
    used: set[str] = set()
    matches: list[tuple[CdrCall, SessionLine | None]] = []
    for call in sorted(required, key=lambda c: (c.start, c.line)):
        pair = _key([call.caller, call.callee])
        candidates = by_numbers.get(pair, [])
        if len(pair) == 2:
            # a session that knew only one of the two numbers still answers for the call
            candidates = candidates + by_numbers.get(frozenset([call.caller]), [])
            candidates = candidates + by_numbers.get(frozenset([call.callee]), [])
        best: SessionLine | None = None
        best_gap = window
        for s in candidates:
            if s.rec_id in used:
                continue
            gap = abs(s.start - call.start)
            if gap <= best_gap and (best is None or gap < best_gap):
                best, best_gap = s, gap
        if best is not None:
            used.add(best.rec_id)
        matches.append((call, best))
    media = await _media_received(db, [s.rec_id for _, s in matches if s is not None])
    for call, best in matches:
        if best is None:
            report.results.append(Reconciled("never_offered", call, None, None))
            continue
        category, reason = _categorise(call, best, options, now, media.get(best.rec_id))
        report.results.append(Reconciled(category, call, best, reason))
    report.results.sort(key=lambda r: r.call.line)
    return report
