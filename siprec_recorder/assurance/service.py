"""What the CLI, the portal and ``serve`` share: run a reconciliation and keep its record,
and the assurance part of a running recorder (alert rules, outbox, watched CDR folder)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import append_event

from .alerts import AssuranceLoop, Monitor, NewAlert, Outbox, raise_alert
from .cdr import read_cdr_file
from .models import ReconciliationRun
from .reconcile import ReconcileOptions, ReconciliationReport, reconcile_calls
from .settings import alert_settings, build_channels, channel_names, layout_named

__all__ = ["AssuranceService", "list_runs", "load_run", "run_reconciliation", "save_run"]

log = logging.getLogger(__name__)


def reconcile_options(config: Any) -> ReconcileOptions:
    r = config.reconcile
    return ReconcileOptions(tolerance_s=r.tolerance_s, match_window_s=r.match_window_s)


async def save_run(
    db: Database, report: ReconciliationReport, *, actor: str, channels: list[str]
) -> None:
    """Keep the run (portal), write its audit event, raise an alert if it found exceptions."""
    summary = report.summary()
    async with db.session() as session:
        session.add(
            ReconciliationRun(
                id=report.run_id,
                created_at=report.created_at,
                actor=actor,
                source=report.source[:512],
                exceptions_count=len(report.exceptions),
                summary=summary,
                exceptions=[r.to_dict() for r in report.exceptions],
            )
        )
        counts = {k: summary[k] for k in ("rows", "bad_rows", "required", "not_required")}
        counts.update({k: summary[k] for k in ("recorded", "short", "declined", "failed")})
        await append_event(
            session,
            actor=actor,
            action="reconcile.run",
            subject=f"reconciliation:{report.run_id}",
            details={
                "file": report.source,
                "layout": report.layout,
                "period": summary["period"],
                **counts,
                "never_offered": summary["never_offered"],
            },
        )
        await session.commit()
    if report.exceptions:
        c = report.counts
        await raise_alert(
            db,
            NewAlert(
                rule="reconciliation_exceptions",
                key=report.run_id,
                severity="critical" if c["never_offered"] or c["failed"] else "warning",
                subject=f"reconciliation:{report.run_id}",
                summary=(
                    f"reconciliation of {report.source}: {len(report.exceptions)} regulated "
                    f"call(s) not properly recorded (never offered {c['never_offered']}, "
                    f"short {c['short']}, declined {c['declined']}, failed {c['failed']})"
                ),
                details={k: summary[k] for k in ("file", "period", "required", "exceptions")},
            ),
            channels,
            now=report.created_at,
        )


async def run_reconciliation(
    db: Database,
    policy: Any,
    config: Any,
    path: str | Path,
    *,
    layout: str | None = None,
    actor: str,
) -> ReconciliationReport:
    """Read ``path``, reconcile it, keep the run (raises LocalProtocolError / ConfigError)."""
    chosen = layout_named(config.reconcile, layout)
    cdr = await asyncio.to_thread(
        read_cdr_file,
        path,
        chosen,
        timezone=config.reconcile.timezone,
        country_code=config.policy.country_code,
    )
    report = await reconcile_calls(db, policy, cdr, reconcile_options(config))
    await save_run(db, report, actor=actor, channels=channel_names(config.alerts))
    return report


async def list_runs(db: Database, limit: int = 50) -> list[ReconciliationRun]:
    async with db.session() as session:
        rows = await session.execute(
            select(ReconciliationRun).order_by(ReconciliationRun.created_at.desc()).limit(limit)
        )
        return list(rows.scalars())


async def load_run(db: Database, run_id: str) -> ReconciliationRun | None:
    async with db.session() as session:
        return await session.get(ReconciliationRun, run_id[:64])


class FolderWatcher:
    """Reconciles every CDR file dropped into ``[reconcile] watch_dir``.

    A file is claimed by renaming it into ``processing/`` (atomic: of several nodes watching
    one share, one wins), reconciled, then moved to ``done/`` with ``<name>.report.json`` and
    ``<name>.exceptions.csv`` beside it, or to ``failed/`` with ``<name>.error.txt``. A file
    still being written (changed in the last two seconds) waits for the next round.
    """

    SUFFIXES = (".csv", ".xlsx", ".txt")

    def __init__(self, db: Database, policy: Any, config: Any) -> None:
        self.db = db
        self.policy = policy
        self.config = config
        self.folder = Path(config.reconcile.watch_dir)
        self.runs = 0

    async def scan(self, now: float) -> int:
        done = 0
        for sub in ("processing", "done", "failed"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or path.suffix.lower() not in self.SUFFIXES:
                continue
            try:
                if now - path.stat().st_mtime < 2.0:
                    continue
                claimed = self.folder / "processing" / path.name
                os.rename(path, claimed)
            except OSError:
                continue  # gone, or claimed by another node
            await self._one(claimed)
            done += 1
        return done

    async def _one(self, path: Path) -> None:
        try:
            report = await run_reconciliation(
                self.db, self.policy, self.config, path, actor="serve:reconcile-watch"
            )
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the watcher
            target = self.folder / "failed" / path.name
            os.replace(path, target)
            target.with_name(target.name + ".error.txt").write_text(f"{exc}\n", encoding="utf-8")
            log.warning("reconciliation of %s refused: %s", path.name, exc)
            return
        target = self.folder / "done" / path.name
        os.replace(path, target)
        target.with_name(target.name + ".report.json").write_text(
            report.to_json() + "\n", encoding="utf-8"
        )
        target.with_name(target.name + ".exceptions.csv").write_text(
            report.exceptions_csv(), encoding="utf-8"
        )
        self.runs += 1
        log.info(
            "reconciled %s: %d exception(s) of %d regulated calls",
            path.name,
            len(report.exceptions),
            len(report.results),
        )


class AssuranceService:
    """The assurance part of ``serve``: alert rules, the outbox, the watched folder."""

    def __init__(self, db: Database, policy: Any, config: Any, recordings_root: Path) -> None:
        self.config = config
        a = config.alerts
        channels = build_channels(a) if a.enabled else []
        settings = alert_settings(config)
        self.monitor = Monitor(
            db,
            settings,
            recordings_root,
            [c.name for c in channels],
            started_at=datetime.now(UTC),
        )
        self.outbox = Outbox(
            db, channels, retry_base_s=settings.retry_base_s, retry_max_s=settings.retry_max_s
        )
        self.loop = AssuranceLoop(self.monitor, self.outbox, settings.check_interval_s)
        self.watcher = FolderWatcher(db, policy, config) if config.reconcile.watch_dir else None
        self._watch_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        if self.config.alerts.enabled:
            self.loop.start()
        if self.watcher is not None:
            self._watch_task = asyncio.create_task(self._watch(), name="reconcile-watch")

    async def _watch(self) -> None:
        assert self.watcher is not None
        while not self._stop.is_set():
            try:
                if await self.watcher.scan(time.time()):
                    self.loop.wake()
            except Exception:  # noqa: BLE001
                log.exception("watched CDR folder scan failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.reconcile.watch_interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._watch_task is not None:
            await asyncio.gather(self._watch_task, return_exceptions=True)
        await self.loop.stop()

    def metric_lines(self) -> list[str]:
        """Prometheus lines of the alerts, the outbox and the last reconciliation."""
        m, o = self.monitor, self.outbox
        lines = [
            "# HELP siprec_alerts_raised_total Alerts raised by this node, by rule.",
            "# TYPE siprec_alerts_raised_total counter",
            *(f'siprec_alerts_raised_total{{rule="{r}"}} {n}' for r, n in m.raised.items()),
            "# HELP siprec_alerts_firing Conditions an alert rule saw at its last check.",
            "# TYPE siprec_alerts_firing gauge",
            *(f'siprec_alerts_firing{{rule="{r}"}} {n}' for r, n in m.firing.items()),
            "# HELP siprec_alert_deliveries_total Alerts delivered, by channel.",
            "# TYPE siprec_alert_deliveries_total counter",
            *(
                f'siprec_alert_deliveries_total{{channel="{c}"}} {n}'
                for c, n in o.delivered.items()
            ),
            "# HELP siprec_alert_delivery_failures_total Failed delivery attempts, by channel.",
            "# TYPE siprec_alert_delivery_failures_total counter",
            *(
                f'siprec_alert_delivery_failures_total{{channel="{c}"}} {n}'
                for c, n in o.failures.items()
            ),
            "# HELP siprec_alert_outbox_pending Alerts waiting for delivery, by channel.",
            "# TYPE siprec_alert_outbox_pending gauge",
            *(f'siprec_alert_outbox_pending{{channel="{c}"}} {n}' for c, n in o.pending.items()),
            "# HELP siprec_reconcile_exceptions Exceptions of the last reconciliation, by kind.",
            "# TYPE siprec_reconcile_exceptions gauge",
        ]
        for category in ("never_offered", "short", "declined", "failed"):
            n = m.reconcile_exceptions.get(category, 0)
            lines.append(f'siprec_reconcile_exceptions{{category="{category}"}} {n}')
        q = m.quality
        if q:
            lines += [
                "# HELP siprec_recent_packets_expected RTP packets expected, recordings of the "
                "last 5 minutes.",
                "# TYPE siprec_recent_packets_expected gauge",
                f"siprec_recent_packets_expected {q['packets_expected']:.0f}",
                "# HELP siprec_recent_packets_lost RTP packets lost, recordings of the last "
                "5 minutes.",
                "# TYPE siprec_recent_packets_lost gauge",
                f"siprec_recent_packets_lost {q['packets_lost']:.0f}",
                "# HELP siprec_recent_mos Mean estimated MOS, streams of the last 5 minutes.",
                "# TYPE siprec_recent_mos gauge",
                f"siprec_recent_mos {q['mos']:.3f}"
                if q["mos"] == q["mos"]
                else "siprec_recent_mos NaN",
            ]
        return lines


def report_json(report: ReconciliationReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
