"""Scheduled run-once jobs inside ``serve``: the daily retention purge.

Every node runs the same schedule; the ``retention-purge`` claim in ``cluster_jobs`` (see
:func:`~siprec_recorder.compliance.retention.purge_once`) makes one node run it per day, at
or after ``[storage] purge_hour`` (local time in ``[policy] timezone``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["PurgeSchedule", "slot_start"]

log = logging.getLogger(__name__)


def slot_start(now: datetime, hour: int, zone: ZoneInfo) -> datetime | None:
    """Today's purge time in ``zone`` if ``now`` is past it, else None (not due yet)."""
    local = now.astimezone(zone)
    start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return start if local >= start else None


class PurgeSchedule:
    """Run the retention purge once a day across the cluster."""

    def __init__(
        self,
        db: Any,
        layout: Any,
        *,
        node_id: str,
        hour: int,
        zone: ZoneInfo,
        default_years: int,
        interval: float = 60.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.layout = layout
        self.node_id = node_id
        self.hour = hour
        self.zone = zone
        self.default_years = default_years
        self.interval = interval
        self.now = now or (lambda: datetime.now(zone))
        self.runs = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="purge-schedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - tried again at the next tick
                log.exception("scheduled retention purge failed")
            await asyncio.sleep(self.interval)

    async def tick(self) -> Any:
        """Run the purge if today's slot has come and no node ran it since; returns the
        report when this node ran it."""
        from siprec_recorder.compliance.retention import purge_once

        now = self.now()
        start = slot_start(now, self.hour, self.zone)
        if start is None:
            return None
        report = await purge_once(
            self.db,
            self.layout,
            now,
            runner=self.node_id,
            not_before=start.timestamp(),
            default_years=self.default_years,
            actor=f"node:{self.node_id}",
        )
        if report.busy:
            return None
        self.runs += 1
        log.info(
            "scheduled retention purge: %d purged, %d kept on legal hold, %d error(s)",
            len(report.purged),
            len(report.held),
            len(report.errors),
        )
        return report
