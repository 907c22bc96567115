"""Reconciliation: every recording session the SRC offered in a period, and what became of it.

Theory of operation
-------------------
The recorder writes a row for every session it saw (``recordings``): ``recording`` when the call
is accepted, then ``complete``, ``interrupted`` (recovered after a crash) or ``failed``;
``declined`` with a ``reason`` when policy refused it. :func:`completeness` lists those rows
for calls started in ``[since, until)`` and counts them, so that "was every regulated call
recorded?" can be answered line by line against the SBC's own call records.

A recording disposed of after its retention is ``purged``; its outcome before disposal is read
back from its ``recording.purged`` ledger event (``state_before``), so an old period still
reports the sessions as they were recorded (and says they were purged).

Outcomes: ``complete``, ``interrupted``, ``failed``, ``declined``, ``in-progress`` (still
``recording``: a live call, or a row a crash left that recovery has not closed yet).
``accepted`` counts every session answered with 200 OK (all but ``declined``).

The report also carries the audit ledger's head (last entry and its hash) at the time it was
made; filed with the report, it anchors the ledger against a later rewrite or a cut tail.

What the table cannot show: an INVITE refused before a session existed (source not allowed,
overload, the disk floor's 503) leaves no row, only a log line and a metric, unless the SRS
writes a declined row for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from siprec_recorder.isotime import utc_iso
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import last_entry
from siprec_recorder.storage.models import LedgerEntry, Recording

__all__ = ["OUTCOMES", "CompletenessReport", "SessionLine", "completeness"]

OUTCOMES: tuple[str, ...] = ("complete", "interrupted", "failed", "declined", "in-progress")
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SessionLine:
    """One session the SRC offered."""

    rec_id: str
    call_id: str
    start: datetime
    end: datetime | None
    outcome: str  # one of OUTCOMES
    reason: str | None
    recorded_number: str | None
    other_number: str | None
    direction: str
    duration_s: float | None
    file: str | None
    purged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rec_id,
            "call_id": self.call_id,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "outcome": self.outcome,
            "reason": self.reason,
            "recorded_number": self.recorded_number,
            "other_number": self.other_number,
            "direction": self.direction,
            "duration_s": self.duration_s,
            "file": self.file,
            "purged": self.purged,
        }


@dataclass(slots=True)
class CompletenessReport:
    """The sessions of ``[since, until)`` and their counts."""

    since: datetime
    until: datetime
    sessions: list[SessionLine] = field(default_factory=list)
    #: The audit ledger's last entry when the report was made: (seq, hash). Kept with the
    #: report (printed, filed), it anchors the chain: a later ledger whose entry ``seq`` has
    #: another hash, or that has no entry ``seq``, was rewritten or cut.
    ledger_head: tuple[int, str] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """``offered``, ``accepted``, one count per outcome, and ``purged``."""
        counts = {"offered": len(self.sessions), "accepted": 0}
        counts.update({o: 0 for o in OUTCOMES})
        counts["purged"] = 0
        for s in self.sessions:
            counts[s.outcome] += 1
            if s.outcome != "declined":
                counts["accepted"] += 1
            if s.purged:
                counts["purged"] += 1
        return counts

    @property
    def declined_by_reason(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for s in self.sessions:
            if s.outcome == "declined":
                key = s.reason or "unspecified"
                reasons[key] = reasons.get(key, 0) + 1
        return dict(sorted(reasons.items()))

    @property
    def failed_by_reason(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for s in self.sessions:
            if s.outcome in ("failed", "interrupted"):
                key = f"{s.outcome}: {s.reason or 'unspecified'}"
                reasons[key] = reasons.get(key, 0) + 1
        return dict(sorted(reasons.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": {"since": utc_iso(self.since), "until": utc_iso(self.until)},
            "counts": self.counts,
            "declined_by_reason": self.declined_by_reason,
            "not_recorded_by_reason": self.failed_by_reason,
            "sessions": [s.to_dict() for s in self.sessions],
            "ledger_head": None
            if self.ledger_head is None
            else {"seq": self.ledger_head[0], "hash": self.ledger_head[1]},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_table(self) -> str:
        """A printable report: one line per session, then the counts."""
        lines = [
            f"Completeness of recording, {utc_iso(self.since)} to {utc_iso(self.until)}",
            "",
            f"{'start (UTC)':<20}  {'outcome':<11}  {'recorded':<16}  {'other':<16}  "
            f"{'secs':>7}  {'id':<32}  reason",
        ]
        for s in self.sessions:
            outcome = s.outcome + ("*" if s.purged else "")
            secs = "" if s.duration_s is None else f"{s.duration_s:7.1f}"
            lines.append(
                f"{s.start:%Y-%m-%d %H:%M:%S}  {outcome:<11}  {s.recorded_number or '-':<16}  "
                f"{s.other_number or '-':<16}  {secs:>7}  {s.rec_id:<32}  {s.reason or ''}"
            )
        c = self.counts
        lines += [
            "",
            f"offered {c['offered']}: accepted {c['accepted']} (complete {c['complete']}, "
            f"interrupted {c['interrupted']}, failed {c['failed']}, "
            f"in progress {c['in-progress']}), declined {c['declined']}",
        ]
        if c["purged"]:
            lines.append(f"* {c['purged']} purged after retention (outcome as recorded)")
        for reason, n in self.declined_by_reason.items():
            lines.append(f"  declined, {reason}: {n}")
        for reason, n in self.failed_by_reason.items():
            lines.append(f"  {reason}: {n}")
        if self.ledger_head is not None:
            lines += [
                "",
                f"audit ledger head: entry {self.ledger_head[0]}, sha256 {self.ledger_head[1]}",
                "(keep this line with the report: it anchors the audit ledger as of now)",
            ]
        return "\n".join(lines) + "\n"


async def completeness(db: Database, since: datetime, until: datetime) -> CompletenessReport:
    """Every session whose call started in ``[since, until)``, oldest first."""
    report = CompletenessReport(since=since, until=until)
    stmt = (
        select(
            Recording.id,
            Recording.call_id,
            Recording.start,
            Recording.end,
            Recording.state,
            Recording.reason,
            Recording.recorded_number,
            Recording.other_number,
            Recording.direction,
            Recording.duration_s,
            Recording.file,
        )
        .where(Recording.start >= since, Recording.start < until)
        .order_by(Recording.start, Recording.id)
    )
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
        purged_ids = [r.id for r in rows if r.state == "purged"]
        before: dict[str, str] = {}
        for i in range(0, len(purged_ids), _CHUNK):
            chunk = purged_ids[i : i + _CHUNK]
            events = await session.execute(
                select(LedgerEntry.subject, LedgerEntry.details).where(
                    LedgerEntry.action == "recording.purged", LedgerEntry.subject.in_(chunk)
                )
            )
            for subject, details in events.all():
                try:
                    state = json.loads(details).get("state_before")
                except (ValueError, AttributeError):
                    state = None
                if isinstance(state, str):
                    before[subject] = state
        head = await last_entry(session)
        if head is not None:
            report.ledger_head = (head.seq, head.hash)
    for r in rows:
        purged = r.state == "purged"
        state = before.get(r.id, "complete") if purged else r.state
        outcome = "in-progress" if state == "recording" else state
        if outcome not in OUTCOMES:
            outcome = "failed"  # an unknown state is never counted as recorded
        report.sessions.append(
            SessionLine(
                rec_id=r.id,
                call_id=r.call_id,
                start=r.start,
                end=r.end,
                outcome=outcome,
                reason=r.reason,
                recorded_number=r.recorded_number,
                other_number=r.other_number,
                direction=r.direction,
                duration_s=r.duration_s,
                file=r.file,
                purged=purged,
            )
        )
    return report
