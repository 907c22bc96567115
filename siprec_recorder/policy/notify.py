"""Delivery of queued notifications to ``[policy] notify_webhook`` (e.g. an SMS gateway).

Theory of operation
-------------------
:class:`~.service.PolicyService` writes a row in ``policy_notifications`` in the same
transaction as the change that causes it, so a notification exists exactly when the change
committed. This worker POSTs each due row's JSON payload to the webhook, oldest first and in
order for each number (a later notification of a number waits for the one before it); a ``2xx``
answer marks it delivered (``delivered_at``; the row is kept as a record). Anything else (a
refused connection, a timeout, a ``5xx`` or ``4xx``) counts an attempt, keeps the error text
and schedules the next attempt with exponential backoff (``backoff_base * 2**(attempts-1)``
seconds, at most ``backoff_max``). Rows stay until delivered, so nothing is lost when the
recorder restarts or the webhook is down for hours.

Several nodes share the database and each runs this worker, so every attempt is *claimed*
first, in one short transaction of one statement: ``UPDATE ... SET next_attempt_at = <lease>
WHERE id IN (SELECT ... due and undelivered ... FOR UPDATE SKIP LOCKED) RETURNING``. On
PostgreSQL two workers polling the same rows at the same moment take different rows and never
wait for each other (``SKIP LOCKED``), and a row that another worker claimed in between no
longer matches ``next_attempt_at <= now`` when it is re-checked; on SQLite the statement runs
under the one writer lock, so the second worker sees the first one's lease. The lease is the
claim's deadline: ``timeout`` (every POST is cut off after it) plus ``lease_margin`` for the
database writes. Rows go out ``concurrency`` at a time, each chunk claimed just before its
POSTs. The result is written only while the lease is still ours (``WHERE next_attempt_at =
<our lease>``): a worker that died, hung or was cut off after its claim holds the row until
the lease ends, then another worker takes it (a later lease, so the late worker's write
matches nothing and is dropped with a warning).

Delivery is therefore once per attempt across the cluster, and at least once overall: a crash
between the POST and the commit of its result sends it again after the lease. Each request
carries an ``Idempotency-Key`` header (the payload's ``id``) for receivers that deduplicate.

Time is an argument: :meth:`NotificationWorker.deliver_due` takes ``now`` and decides what is
due and when to retry from it alone; only :meth:`run` reads the wall clock. A lease, though, is
measured from the moment of its claim, ``now`` plus the time the call has spent so far on the
event loop's monotonic clock: a call that delivers many chunks must not hand out leases that
are already over in real time (with a fake ``now`` the offset is the few milliseconds of the
call).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.models import utcnow

from .db import transaction
from .models import PolicyNotification

__all__ = ["NotificationWorker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A notification this worker holds until ``lease`` (its ``next_attempt_at`` meanwhile)."""

    id: int
    number: str
    payload: str
    attempts: int
    lease: datetime


class NotificationWorker:
    """Sends queued notifications to ``webhook_url`` until each is delivered."""

    def __init__(
        self,
        db: Database,
        webhook_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        backoff_base: float = 2.0,
        backoff_max: float = 600.0,
        poll_interval: float = 5.0,
        batch: int = 50,
        concurrency: int = 8,
        lease_margin: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.db = db
        self.webhook_url = webhook_url
        self._client = client
        self._own_client = client is None
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.batch = batch
        self.concurrency = concurrency
        self.lease_margin = lease_margin
        self.lost_leases = 0  # results dropped because another worker had taken the row
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a row: one cut-off POST plus the database writes."""
        return self.timeout + self.lease_margin

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        exponent = min(max(attempts - 1, 0), 30)
        return float(min(self.backoff_base * (2**exponent), self.backoff_max))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def _post(self, payload: str) -> str | None:
        """POST one payload; None when delivered, else the error text. Never takes longer
        than ``timeout`` (httpx's timeout is per phase; this one is for the whole request),
        so that it ends inside its lease."""
        try:
            key = str(json.loads(payload).get("id", ""))
        except ValueError:
            key = ""
        try:
            response = await asyncio.wait_for(
                self._http().post(
                    self.webhook_url,
                    content=payload.encode("utf-8"),
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                    timeout=self.timeout,
                ),
                self.timeout,
            )
        except TimeoutError:
            return f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"[:500]

    async def _heads(self) -> list[tuple[int, datetime]]:
        """The oldest undelivered notification of each number (``(id, next_attempt_at)``).

        Notifications of one number go out in order: a later one waits for the one before
        (also while another worker holds the one before: its lease is in the future).
        """
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    PolicyNotification.id,
                    PolicyNotification.number,
                    PolicyNotification.next_attempt_at,
                )
                .where(PolicyNotification.delivered_at.is_(None))
                .order_by(PolicyNotification.id)
                .limit(self.batch * 20)
            )
            heads: dict[str, tuple[int, datetime]] = {}
            for row_id, number, due_at in rows:
                if due_at.tzinfo is None:
                    due_at = due_at.replace(tzinfo=UTC)
                heads.setdefault(number, (int(row_id), due_at))
            return sorted(heads.values())

    async def _due(self, now: datetime) -> list[int]:
        return [i for i, t in await self._heads() if t <= now][: self.batch]

    async def _claim(self, ids: list[int], now: datetime, lease: datetime) -> list[_Claimed]:
        """Take those of ``ids`` that are still due at ``now`` and that no other worker is
        taking this instant, until ``lease``; one statement in its own transaction."""
        due = (
            select(PolicyNotification.id)
            .where(
                PolicyNotification.id.in_(ids),
                PolicyNotification.delivered_at.is_(None),
                PolicyNotification.next_attempt_at <= now,
            )
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has its one writer
        )
        async with transaction(self.db) as session:
            rows = await session.execute(
                update(PolicyNotification)
                .where(
                    PolicyNotification.id.in_(due),
                    PolicyNotification.delivered_at.is_(None),
                    PolicyNotification.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease)
                .returning(
                    PolicyNotification.id,
                    PolicyNotification.number,
                    PolicyNotification.payload,
                    PolicyNotification.attempts,
                )
                .execution_options(synchronize_session=False)
            )
            claimed = [
                _Claimed(int(i), str(n), str(p or "{}"), int(a or 0), lease)
                for i, n, p, a in rows.all()
            ]
        return sorted(claimed, key=lambda c: c.id)

    async def _finish(self, claim: _Claimed, error: str | None, now: datetime) -> bool:
        """Write the attempt's result if the lease is still ours; True when delivered."""
        attempts = claim.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.backoff(attempts))
        async with transaction(self.db) as session:
            result = await session.execute(
                update(PolicyNotification)
                .where(
                    PolicyNotification.id == claim.id,
                    PolicyNotification.next_attempt_at == claim.lease,
                    PolicyNotification.delivered_at.is_(None),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if getattr(result, "rowcount", 0) != 1:
            self.lost_leases += 1
            log.warning(
                "notification %s: the lease ran out before the result was written; "
                "another worker has it now (this attempt %s)",
                claim.id,
                "was delivered" if error is None else f"failed: {error}",
            )
            return False
        if error is not None:
            log.warning(
                "notification %s for %s not delivered (attempt %d): %s",
                claim.id,
                claim.number,
                attempts,
                error,
            )
        return error is None

    async def deliver_due(self, now: datetime) -> int:
        """Try every notification due at ``now`` once; return how many were delivered."""
        started = asyncio.get_running_loop().time()
        delivered = 0
        while True:
            progress = await self._deliver_round(now, started)
            delivered += progress
            if progress == 0:
                return delivered

    async def _deliver_round(self, now: datetime, started: float) -> int:
        loop = asyncio.get_running_loop()
        delivered = 0
        due = await self._due(now)
        for i in range(0, len(due), self.concurrency):
            spent = timedelta(seconds=max(loop.time() - started, 0.0))
            lease = now + spent + timedelta(seconds=self.lease_seconds)
            claimed = await self._claim(due[i : i + self.concurrency], now, lease)
            errors = await asyncio.gather(*(self._post(c.payload) for c in claimed))
            for claim, error in zip(claimed, errors, strict=True):
                delivered += await self._finish(claim, error, now)
        return delivered

    async def next_due(self) -> datetime | None:
        """When the next undelivered notification is due (None when all are delivered)."""
        heads = await self._heads()
        return min((t for _, t in heads), default=None)

    async def run(self) -> None:
        """Deliver until :meth:`stop`; sleeps until the next due row or ``poll_interval``."""
        while not self._stop.is_set():
            try:
                await self.deliver_due(utcnow())
                due = await self.next_due()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("notification delivery failed")
                due = None
            wait = self.poll_interval
            if due is not None:
                wait = max(0.05, min(wait, (due - utcnow()).total_seconds()))
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def start(self) -> None:
        """Run :meth:`run` in a background task."""
        self._stop.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="policy-notifications")

    async def stop(self) -> None:
        """Stop the background task and close the HTTP client we own."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.timeout + 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def status(self) -> dict[str, Any]:
        """For metrics and logs."""
        return {"webhook": self.webhook_url, "running": self._task is not None}
