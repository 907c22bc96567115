"""Alerts: a small rules engine over what the recorder knows, and a durable outbox.

Theory of operation
-------------------
A rule looks at facts the recorder already keeps (index rows, the disk, the ledger, the
cluster's lease table) and returns :class:`NewAlert` objects. An alert's id is derived from
the fact (``sha256(rule, key)``): the same failed recording, the same silent source since the
same last INVITE, the same storage episode always gives the same id. :func:`raise_alert`
inserts the alert and one outbox row per configured channel *only if the id is new*, in one
transaction, so checks that run twice (after a restart, on two nodes) raise it once.

The :class:`Outbox` delivers due rows: success stamps ``delivered_at``; a failure counts the
attempt and schedules the next one after ``retry_base_s * 2**attempts`` (capped at
``retry_max_s``). Rows live in the database, so an alert raised while a receiver is down, or
while the recorder restarts, is delivered once the receiver is back. Receivers deduplicate
on the alert id, which every attempt carries.

Every node of a cluster runs an outbox on the same rows, so each attempt is claimed first: one
statement in its own transaction moves the row's ``next_attempt_at`` to a lease
(``UPDATE ... WHERE (alert_id, channel) IN (SELECT ... due ... FOR UPDATE SKIP LOCKED)
RETURNING``; SQLite runs it under its one writer lock). Two outboxes polling at the same
moment therefore take different rows, never the same one. Each delivery is cut off after
``delivery_timeout_s`` and the lease lasts that plus ``lease_margin_s``; the result is written
only while ``next_attempt_at`` is still our lease, so a node that dies after its claim holds
its rows until the lease ends and another node then delivers them. Rows go out
``concurrency`` at a time, each chunk claimed just before it is sent, its lease measured from
then (``now`` plus the time the call has spent, on the event loop's monotonic clock).

Rules (``rule`` names are stable, they label metrics and go to receivers):

* ``recording_failed``, ``no_media``, ``srtp_auth_failed``: a recording that ended
  ``failed`` (finaliser error, no media, SRTP that never authenticated), or a finished
  recording with a stream that carried nothing or failed SRTP authentication;
* ``src_silent``: no INVITE from a configured SRC for ``src_silence_minutes`` while the
  business hours (policy time zone) are on;
* ``storage_low``: free space on the recordings share below ``storage_free_mb``;
* ``ledger_broken``: the audit ledger's hash chain does not verify;
* ``node_gone``: a cluster node's lease expired (see :func:`_lease_rows`);
* ``reconciliation_exceptions``: a reconciliation run found exceptions (raised by the run).

The recording rules follow the ledger: each check reads the finish events
(``recording.finished`` / ``interrupted`` / ``failed``) after the last ``seq`` it saw, so its
cost is that of the recordings that ended since, whatever the size of the index; the first
check looks back ``lookback_s``. The same pass feeds the recent-quality gauges (loss, MOS of
the recordings that ended in the last five minutes).

The monitor never reads a clock itself: :meth:`Monitor.check` and :meth:`Outbox.deliver_due`
take ``now``; the asyncio loop in :class:`AssuranceService` supplies it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError

from siprec_recorder.isotime import utc_iso
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.models import LedgerEntry, Recording, RecordingStream

from .channels import Channel, DeliveryError
from .models import Alert, AlertDelivery, ReconciliationRun

__all__ = [
    "RULES",
    "AlertSettings",
    "Monitor",
    "NewAlert",
    "Outbox",
    "alert_id",
    "raise_alert",
]

log = logging.getLogger(__name__)

RULES: tuple[str, ...] = (
    "recording_failed",
    "no_media",
    "srtp_auth_failed",
    "src_silent",
    "storage_low",
    "ledger_broken",
    "node_gone",
    "reconciliation_exceptions",
)

#: Tables a cluster's node leases may live in, and the column that says until when a node
#: is alive. The cluster part of the recorder owns that table; this rule only reads it.
LEASE_TABLES: tuple[str, ...] = ("cluster_nodes", "node_leases", "cluster_leases")
LEASE_COLUMNS: tuple[str, ...] = ("lease_until", "expires_at", "lease_expires_at")


#: Ledger actions written when a recording ends (see storage/index.py).
_FINISH_ACTIONS = ("recording.finished", "recording.interrupted", "recording.failed")


def alert_id(rule: str, key: str) -> str:
    """The stable id of the alert ``rule`` raises for fact ``key``."""
    return hashlib.sha256(f"{rule}\x00{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule: str
    key: str
    severity: str
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return alert_id(self.rule, self.key)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``[alerts]`` section as the rules need it."""

    check_interval_s: float = 30.0
    lookback_s: float = 3600.0
    retry_base_s: float = 5.0
    retry_max_s: float = 300.0
    src_sources: tuple[str, ...] = ()
    src_silence_minutes: float = 15.0
    business_hours: tuple[str, ...] = ("mon-fri 08:00-18:00",)
    timezone: str = "Europe/Brussels"
    storage_free_mb: int = 1024
    ledger_check_interval_s: float = 3600.0
    # [cluster] lease_seconds: a node whose heartbeat is older than this is gone.
    lease_seconds: float = 15.0


def alert_dict(row: Alert) -> dict[str, Any]:
    created = utc_iso(row.created_at)
    return {
        "id": row.id,
        "rule": row.rule,
        "severity": row.severity,
        "subject": row.subject,
        "summary": row.summary,
        "details": row.details,
        "created_at": created,
    }


async def raise_alert(
    db: Database, alert: NewAlert, channels: Sequence[str], *, now: datetime | None = None
) -> bool:
    """Store ``alert`` and queue it for ``channels``; False when its id exists already."""
    now = now or datetime.now(UTC)
    async with db.session() as session:
        if await session.get(Alert, alert.id) is not None:
            return False
        session.add(
            Alert(
                id=alert.id,
                rule=alert.rule,
                severity=alert.severity,
                subject=alert.subject[:512],
                summary=alert.summary,
                details=alert.details,
                created_at=now,
            )
        )
        await session.flush()
        for channel in channels:
            session.add(AlertDelivery(alert_id=alert.id, channel=channel, next_attempt_at=now))
        try:
            await session.commit()
        except IntegrityError:  # another node raised it in the meantime
            await session.rollback()
            return False
    log.warning("alert %s: %s", alert.rule, alert.summary)
    return True


@dataclass(frozen=True, slots=True)
class _Claimed:
    """An outbox row this outbox holds until ``lease`` (its ``next_attempt_at`` meanwhile)."""

    alert_id: str
    channel: str
    attempts: int
    lease: datetime


class Outbox:
    """Delivers the outbox rows that are due, each through its channel."""

    def __init__(
        self,
        db: Database,
        channels: Sequence[Channel],
        *,
        retry_base_s: float = 5.0,
        retry_max_s: float = 300.0,
        delivery_timeout_s: float = 60.0,
        lease_margin_s: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.db = db
        self.channels = {c.name: c for c in channels}
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.delivery_timeout_s = delivery_timeout_s
        self.lease_margin_s = lease_margin_s
        self.concurrency = concurrency
        self.delivered: dict[str, int] = {c.name: 0 for c in channels}
        self.failures: dict[str, int] = {c.name: 0 for c in channels}
        self.pending: dict[str, int] = {c.name: 0 for c in channels}
        self.lost_leases = 0  # results dropped because another node had taken the row

    @property
    def lease_s(self) -> float:
        """How long a claim holds a row: one cut-off delivery plus the database writes."""
        return self.delivery_timeout_s + self.lease_margin_s

    def backoff(self, attempts: int) -> float:
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(attempts - 1, 0)))

    async def deliver_due(self, now: datetime, limit: int = 100) -> int:
        """Try every due row once (at most ``limit``); returns how many were delivered."""
        if not self.channels:
            return 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = tried = 0
        while tried < limit:
            spent = timedelta(seconds=max(loop.time() - started, 0.0))
            lease = now + spent + timedelta(seconds=self.lease_s)
            claimed = await self._claim(now, lease, min(self.concurrency, limit - tried))
            if not claimed:
                break
            tried += len(claimed)
            async with self.db.session() as session:
                found = await session.execute(
                    select(Alert).where(Alert.id.in_({c.alert_id for c in claimed}))
                )
                alerts = {a.id: alert_dict(a) for a in found.scalars()}
            errors = await asyncio.gather(
                *(self._attempt(c, alerts.get(c.alert_id)) for c in claimed)
            )
            for claim, error in zip(claimed, errors, strict=True):
                done += await self._finish(claim, error, now)
        await self.count_pending()
        return done

    async def _claim(self, now: datetime, lease: datetime, n: int) -> list[_Claimed]:
        """Take up to ``n`` due rows of our channels that no other outbox is taking this
        instant, until ``lease``; one statement in its own transaction."""
        key = tuple_(AlertDelivery.alert_id, AlertDelivery.channel)
        due = (
            select(AlertDelivery.alert_id, AlertDelivery.channel)
            .where(
                AlertDelivery.delivered_at.is_(None),
                AlertDelivery.next_attempt_at <= now,
                AlertDelivery.channel.in_(list(self.channels)),
            )
            .order_by(AlertDelivery.next_attempt_at, AlertDelivery.alert_id)
            .limit(n)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has its one writer
        )
        async with self.db.session() as session:
            rows = await session.execute(
                update(AlertDelivery)
                .where(
                    key.in_(due),
                    AlertDelivery.delivered_at.is_(None),
                    AlertDelivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease)
                .returning(AlertDelivery.alert_id, AlertDelivery.channel, AlertDelivery.attempts)
                .execution_options(synchronize_session=False)
            )
            claimed = [_Claimed(str(a), str(c), int(n or 0), lease) for a, c, n in rows.all()]
            await session.commit()
        return claimed

    async def _attempt(self, claim: _Claimed, alert: dict[str, Any] | None) -> str | None:
        """Deliver one alert through its channel: None, or the error text."""
        channel = self.channels[claim.channel]
        if alert is None:
            return "alert row missing"
        try:
            await asyncio.wait_for(channel.deliver(alert), self.delivery_timeout_s)
        except DeliveryError as exc:
            return str(exc)
        except TimeoutError:
            return f"{channel.name}: timed out after {self.delivery_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - a channel bug must not stop the outbox
            log.exception("alert channel %s failed", channel.name)
            return f"{exc.__class__.__name__}: {exc}"
        return None

    async def _finish(self, claim: _Claimed, error: str | None, now: datetime) -> bool:
        """Write the attempt's result if the lease is still ours; True when delivered."""
        attempts = claim.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.backoff(attempts))
        async with self.db.session() as session:
            result = await session.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.alert_id == claim.alert_id,
                    AlertDelivery.channel == claim.channel,
                    AlertDelivery.next_attempt_at == claim.lease,
                    AlertDelivery.delivered_at.is_(None),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        if getattr(result, "rowcount", 0) != 1:
            self.lost_leases += 1
            log.warning(
                "alert %s (%s): the lease ran out before the result was written; another "
                "node has it now",
                claim.alert_id,
                claim.channel,
            )
            return False
        if error is None:
            self.delivered[claim.channel] += 1
            return True
        self.failures[claim.channel] += 1
        log.warning("alert %s not delivered (%s); will retry", claim.alert_id, error)
        return False

    async def count_pending(self) -> None:
        async with self.db.session() as session:
            rows = await session.execute(
                select(AlertDelivery.channel, func.count())
                .where(AlertDelivery.delivered_at.is_(None))
                .group_by(AlertDelivery.channel)
            )
            pending = {c: 0 for c in self.channels}
            for channel, n in rows.all():
                if channel in pending:
                    pending[channel] = int(n)
            self.pending = pending


Rule = Callable[[datetime], Awaitable[list[NewAlert]]]


class Monitor:
    """Evaluates the rules; remembers what fired for the metrics."""

    def __init__(
        self,
        db: Database,
        settings: AlertSettings,
        recordings_root: Path,
        channels: Sequence[str],
        *,
        started_at: datetime,
    ) -> None:
        self.db = db
        self.settings = settings
        self.root = recordings_root
        self.channels = list(channels)
        self.started_at = started_at
        self.raised: dict[str, int] = {r: 0 for r in RULES}
        self.firing: dict[str, int] = {r: 0 for r in RULES}
        self.quality: dict[str, float] = {}
        self.reconcile_exceptions: dict[str, int] = {}
        self._storage_low_since: datetime | None = None
        self._seq: int | None = None  # ledger cursor of the recording rules
        self._src_seq: int | None = None  # ledger cursor of the SRC silence rule
        self._src_last: dict[str, datetime | None] = {}
        # (when seen, packets expected, packets lost, MOS of each stream) per recording
        self._recent: deque[tuple[datetime, int, int, list[float]]] = deque()
        self._ledger_checked_at: datetime | None = None
        self._ledger_alerts: list[NewAlert] = []
        self.rules: dict[str, Rule] = {
            "recordings": self._recordings,
            "src_silent": self._src_silent,
            "storage_low": self._storage_low,
            "ledger_broken": self._ledger,
            "node_gone": self._nodes,
        }

    async def check(self, now: datetime) -> list[NewAlert]:
        """Run every rule at ``now``; raise (store and queue) what is new."""
        found: list[NewAlert] = []
        for name, rule in self.rules.items():
            try:
                found += await rule(now)
            except Exception:  # noqa: BLE001 - one broken rule must not silence the others
                log.exception("alert rule %s failed", name)
        firing = {r: 0 for r in RULES}
        new: list[NewAlert] = []
        for alert in found:
            firing[alert.rule] += 1
            if await raise_alert(self.db, alert, self.channels, now=now):
                self.raised[alert.rule] += 1
                new.append(alert)
        firing["reconciliation_exceptions"] = self.firing.get("reconciliation_exceptions", 0)
        self.firing = firing
        await self._observe(now)
        return new

    async def _observe(self, now: datetime) -> None:
        """Gauges for the dashboard: recent media quality, the last reconciliation."""
        horizon = now - timedelta(minutes=5)
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        expected = sum(r[1] for r in self._recent)
        lost = sum(r[2] for r in self._recent)
        mos = [m for r in self._recent for m in r[3]]
        self.quality = {
            "packets_expected": float(expected),
            "packets_lost": float(lost),
            "mos": sum(mos) / len(mos) if mos else float("nan"),
            "streams": float(sum(len(r[3]) for r in self._recent)),
        }
        async with self.db.session() as session:
            run = (
                await session.execute(
                    select(ReconciliationRun.summary)
                    .order_by(ReconciliationRun.created_at.desc())
                    .limit(1)
                )
            ).scalar()
        if isinstance(run, dict):
            self.reconcile_exceptions = {
                c: int(run.get(c, 0)) for c in ("never_offered", "short", "declined", "failed")
            }
            self.firing["reconciliation_exceptions"] = int(run.get("exceptions", 0))

    async def _finished_since_last_check(self, now: datetime) -> list[str]:
        """Ids of the recordings that ended since the last check, read from the ledger's
        finish events after a cursor (its primary key): no scan of the recordings table.
        The first check looks back ``lookback_s``."""
        async with self.db.session() as session:
            stmt = select(LedgerEntry.seq, LedgerEntry.subject).where(
                LedgerEntry.action.in_(_FINISH_ACTIONS)
            )
            if self._seq is None:
                stmt = stmt.where(
                    LedgerEntry.ts >= now - timedelta(seconds=self.settings.lookback_s)
                )
            else:
                stmt = stmt.where(LedgerEntry.seq > self._seq)
            rows = (await session.execute(stmt.order_by(LedgerEntry.seq).limit(20_000))).all()
            if self._seq is None and not rows:
                head = (await session.execute(select(func.max(LedgerEntry.seq)))).scalar()
                self._seq = int(head or 0)
        if rows:
            self._seq = int(rows[-1][0])
        return list(dict.fromkeys(str(r[1]) for r in rows))

    async def _recordings(self, now: datetime) -> list[NewAlert]:
        rec_ids = await self._finished_since_last_check(now)
        out: list[NewAlert] = []
        for i in range(0, len(rec_ids), 500):
            out += await self._recordings_chunk(now, rec_ids[i : i + 500])
        return out

    async def _recordings_chunk(self, now: datetime, rec_ids: list[str]) -> list[NewAlert]:
        out: list[NewAlert] = []
        async with self.db.session() as session:
            recs = await session.execute(
                select(
                    Recording.id,
                    Recording.state,
                    Recording.reason,
                    Recording.recorded_number,
                    Recording.start,
                ).where(Recording.id.in_(rec_ids))
            )
            recordings = {r[0]: r for r in recs.all()}
            streams = await session.execute(
                select(
                    RecordingStream.recording_id,
                    RecordingStream.label,
                    RecordingStream.status,
                    RecordingStream.packets_received,
                    RecordingStream.packets_expected,
                    RecordingStream.packets_lost,
                    RecordingStream.mos,
                ).where(RecordingStream.recording_id.in_(rec_ids))
            )
            by_recording: dict[str, list[Any]] = {}
            for row in streams.all():
                by_recording.setdefault(row[0], []).append(row)
        for rec_id, state, reason, number, start in recordings.values():
            legs = by_recording.get(rec_id, [])
            self._recent.append(
                (
                    now,
                    sum(int(leg[4] or 0) for leg in legs),
                    sum(int(leg[5] or 0) for leg in legs),
                    [float(leg[6]) for leg in legs if leg[6] is not None],
                )
            )
            if state == "failed":
                text_reason = reason or "unspecified"
                if "SRTP authentication" in text_reason:
                    rule = "srtp_auth_failed"
                elif "no media" in text_reason:
                    rule = "no_media"
                else:
                    rule = "recording_failed"
                out.append(
                    NewAlert(
                        rule=rule,
                        key=rec_id,
                        severity="critical",
                        subject=f"recording:{rec_id}",
                        summary=f"recording of {number or 'unknown number'} failed: {text_reason}",
                        details={
                            "recording_id": rec_id,
                            "recorded_number": number,
                            "start": start.astimezone(UTC).isoformat(),
                            "reason": text_reason,
                        },
                    )
                )
                continue
            for _rid, label, status, received, *_ in legs:
                if status != "auth_failed" and received:
                    continue
                rule = "srtp_auth_failed" if status == "auth_failed" else "no_media"
                what = "failed SRTP authentication" if rule == "srtp_auth_failed" else "no media"
                out.append(
                    NewAlert(
                        rule=rule,
                        key=f"{rec_id}:{label}",
                        severity="warning",
                        subject=f"recording:{rec_id}",
                        summary=f"stream {label} of the recording of {number or 'unknown'}: {what}",
                        details={"recording_id": rec_id, "label": label, "status": status},
                    )
                )
        return out

    def _business_hours(self, now: datetime) -> bool:
        from siprec_recorder.policy.schedule import Slot, in_schedule

        slots = [Slot.parse(s) for s in self.settings.business_hours]
        return not slots or in_schedule(slots, now, self.settings.timezone)

    async def _last_invites(self) -> dict[str, datetime | None]:
        """When each configured SRC last sent an INVITE that left a row (recorded or declined).

        Seeded once with one query per source; afterwards only the ``recording.started`` and
        ``recording.declined`` ledger events after a cursor are read, so a check costs the
        calls since the last one, not a scan of the index.
        """
        hosts = set(self.settings.src_sources)
        async with self.db.session() as session:
            if self._src_seq is None:
                self._src_seq = int(
                    (await session.execute(select(func.max(LedgerEntry.seq)))).scalar() or 0
                )
                for host in hosts:
                    last = (
                        await session.execute(
                            select(func.max(Recording.start)).where(
                                Recording.source.like(f"%:{host}:%")
                            )
                        )
                    ).scalar()
                    self._src_last[host] = _aware(last)
                return dict(self._src_last)
            rows = (
                await session.execute(
                    select(LedgerEntry.seq, LedgerEntry.subject)
                    .where(
                        LedgerEntry.seq > self._src_seq,
                        LedgerEntry.action.in_(("recording.started", "recording.declined")),
                    )
                    .order_by(LedgerEntry.seq)
                    .limit(20_000)
                )
            ).all()
            if rows:
                self._src_seq = int(rows[-1][0])
            ids = [str(r[1]) for r in rows]
            for i in range(0, len(ids), 500):
                found = await session.execute(
                    select(Recording.source, Recording.start).where(
                        Recording.id.in_(ids[i : i + 500])
                    )
                )
                for source, start in found.all():
                    host = (source or "").partition(":")[2].rpartition(":")[0]
                    when = _aware(start)
                    if host in hosts and when is not None:
                        prev = self._src_last.get(host)
                        self._src_last[host] = when if prev is None else max(prev, when)
        return dict(self._src_last)

    async def _src_silent(self, now: datetime) -> list[NewAlert]:
        if not self.settings.src_sources:
            return []
        last_seen = await self._last_invites()  # kept current outside business hours too
        if not self._business_hours(now):
            return []
        limit = timedelta(minutes=self.settings.src_silence_minutes)
        out: list[NewAlert] = []
        for host in self.settings.src_sources:
            last = last_seen.get(host)
            seen = max(last, self.started_at) if last is not None else self.started_at
            if now - seen < limit:
                continue
            minutes = int((now - seen).total_seconds() // 60)
            out.append(
                NewAlert(
                    rule="src_silent",
                    key=f"{host}:{seen.isoformat()}",
                    severity="critical",
                    subject=f"src:{host}",
                    summary=f"no INVITE from SRC {host} for {minutes} minutes "
                    "during business hours",
                    details={
                        "source": host,
                        "last_invite": last.astimezone(UTC).isoformat() if last else None,
                        "minutes": minutes,
                    },
                )
            )
        return out

    async def _storage_low(self, now: datetime) -> list[NewAlert]:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError as exc:
            return [
                NewAlert(
                    rule="storage_low",
                    key=f"unreadable:{now:%Y-%m-%d}",
                    severity="critical",
                    subject=f"storage:{self.root}",
                    summary=f"cannot read free space of {self.root}: {exc}",
                )
            ]
        threshold = self.settings.storage_free_mb * 1024 * 1024
        if free >= threshold:
            self._storage_low_since = None
            return []
        if self._storage_low_since is None:
            self._storage_low_since = now
        free_mb = free // (1024 * 1024)
        return [
            NewAlert(
                rule="storage_low",
                key=self._storage_low_since.isoformat(),
                severity="critical",
                subject=f"storage:{self.root}",
                summary=f"{free_mb} MB free on the recordings share, below the "
                f"{self.settings.storage_free_mb} MB threshold",
                details={"free_mb": free_mb, "threshold_mb": self.settings.storage_free_mb},
            )
        ]

    async def _ledger(self, now: datetime) -> list[NewAlert]:
        due = self._ledger_checked_at is None or now - self._ledger_checked_at >= timedelta(
            seconds=self.settings.ledger_check_interval_s
        )
        if not due:
            return self._ledger_alerts
        from siprec_recorder.storage.ledger import verify_chain

        async with self.db.session() as session:
            problems = await verify_chain(session)
        self._ledger_checked_at = now
        self._ledger_alerts = (
            [
                NewAlert(
                    rule="ledger_broken",
                    key=hashlib.sha256(problems[0].encode()).hexdigest(),
                    severity="critical",
                    subject="ledger",
                    summary=f"audit ledger hash chain broken: {problems[0]}",
                    details={"problems": problems[:20], "count": len(problems)},
                )
            ]
            if problems
            else []
        )
        return self._ledger_alerts

    async def _nodes(self, now: datetime) -> list[NewAlert]:
        return [
            NewAlert(
                rule="node_gone",
                key=f"{node}:{until.isoformat()}",
                severity="critical",
                subject=f"node:{node}",
                summary=f"cluster node {node} is gone: its lease expired at {until.isoformat()}",
                details={"node_id": node, "lease_until": until.isoformat()},
            )
            for node, until in await _lease_rows(self.db, self.settings.lease_seconds)
            if until < now
        ]


def _aware(value: Any) -> datetime | None:
    """A time from the index as an aware datetime (SQLite aggregates return stored text)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _lease_rows(db: Database, lease_seconds: float = 15.0) -> list[tuple[str, datetime]]:
    """``(node_id, lease end)`` of every node that did not stop cleanly.

    The cluster's ``cluster_nodes`` (siprec_recorder/cluster: a heartbeat in epoch seconds,
    alive for ``lease_seconds`` after it; ``state`` is ``stopped`` after a clean stop) comes
    first; otherwise the first of :data:`LEASE_TABLES` that exists with a ``node_id`` column
    and one of :data:`LEASE_COLUMNS`. With no such table the rule has nothing to say.
    """

    def find(conn: Any) -> tuple[str, str] | None:
        insp = inspect(conn)
        names = set(insp.get_table_names())
        for table in LEASE_TABLES:
            if table not in names:
                continue
            columns = {c["name"] for c in insp.get_columns(table)}
            if "node_id" not in columns:
                continue
            if {"heartbeat_at", "state"} <= columns:
                return table, "heartbeat_at"
            for column in LEASE_COLUMNS:
                if column in columns:
                    return table, column
        return None

    async with db.engine.connect() as conn:
        found = await conn.run_sync(find)
        if found is None:
            return []
        table, column = found
        out: list[tuple[str, datetime]] = []
        if column == "heartbeat_at":
            beats = await conn.execute(
                text(f"SELECT node_id, heartbeat_at FROM \"{table}\" WHERE state <> 'stopped'")
            )
            for node, beat in beats.all():
                if isinstance(beat, int | float):
                    end = datetime.fromtimestamp(float(beat) + lease_seconds, UTC)
                    out.append((str(node), end))
            return out
        rows = await conn.execute(text(f'SELECT node_id, "{column}" FROM "{table}"'))
        for node, until in rows.all():
            if isinstance(until, str):
                try:
                    until = datetime.fromisoformat(until)
                except ValueError:
                    continue
            if not isinstance(until, datetime):
                continue
            out.append((str(node), until if until.tzinfo else until.replace(tzinfo=UTC)))
        return out


class AssuranceLoop:
    """Runs the monitor and the outbox every few seconds until stopped."""

    def __init__(self, monitor: Monitor, outbox: Outbox, interval_s: float) -> None:
        self.monitor = monitor
        self.outbox = outbox
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="assurance")

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        last_check: datetime | None = None
        while not self._stop.is_set():
            now = datetime.now(UTC)
            try:
                if last_check is None or (now - last_check).total_seconds() >= self.interval_s:
                    await self.monitor.check(now)
                    last_check = now
                await self.outbox.deliver_due(now)
            except Exception:  # noqa: BLE001 - keep checking; a database hiccup passes
                log.exception("alert loop iteration failed")
            # the outbox is polled more often than the rules, so a retry is never late by a
            # whole check interval
            tick = min(self.interval_s, max(self.outbox.retry_base_s / 2, 0.5))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), tick)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
