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

Delivery is at least once: a row is claimed (its ``next_attempt_at`` moved past the request
timeout) before the POST, so two workers sharing a database do not send it at the same time,
but a crash between the POST and the commit sends it again. Each request carries an
``Idempotency-Key`` header (the payload's ``id``) for receivers that deduplicate.

Time is an argument: :meth:`NotificationWorker.deliver_due` takes ``now``; only :meth:`run`
reads the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
    ) -> None:
        self.db = db
        self.webhook_url = webhook_url
        self._client = client
        self._own_client = client is None
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        exponent = min(max(attempts - 1, 0), 30)
        return float(min(self.backoff_base * (2**exponent), self.backoff_max))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def _post(self, payload: str) -> str | None:
        """POST one payload; None when delivered, else the error text."""
        try:
            key = str(json.loads(payload).get("id", ""))
        except ValueError:
            key = ""
        try:
            response = await self._http().post(
                self.webhook_url,
                content=payload.encode("utf-8"),
                headers={"Content-Type": "application/json", "Idempotency-Key": key},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"[:500]

    async def _heads(self) -> list[tuple[int, datetime]]:
        """The oldest undelivered notification of each number (``(id, next_attempt_at)``).

        Notifications of one number go out in order: a later one waits for the one before.
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

    async def _due(self, now: datetime) -> list[tuple[int, datetime]]:
        return [(i, t) for i, t in await self._heads() if t <= now][: self.batch]

    async def deliver_due(self, now: datetime) -> int:
        """Try every notification due at ``now`` once; return how many were delivered."""
        delivered = 0
        while True:
            progress = await self._deliver_round(now)
            delivered += progress
            if progress == 0:
                return delivered

    async def _deliver_round(self, now: datetime) -> int:
        delivered = 0
        for row_id, due_at in await self._due(now):
            lease = now + timedelta(seconds=self.timeout * 2 + 1)
            async with transaction(self.db) as session:
                claimed = await session.execute(
                    update(PolicyNotification)
                    .where(
                        PolicyNotification.id == row_id,
                        PolicyNotification.next_attempt_at == due_at,
                        PolicyNotification.delivered_at.is_(None),
                    )
                    .values(next_attempt_at=lease)
                )
                if getattr(claimed, "rowcount", 0) != 1:
                    continue  # another worker has it
                payload = await session.scalar(
                    select(PolicyNotification.payload).where(PolicyNotification.id == row_id)
                )
            error = await self._post(payload or "{}")
            async with transaction(self.db) as session:
                row = await session.get(PolicyNotification, row_id)
                if row is None:
                    continue
                row.attempts += 1
                if error is None:
                    row.delivered_at = now
                    row.last_error = None
                    delivered += 1
                else:
                    row.last_error = error
                    row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
                    log.warning(
                        "notification %s for %s not delivered (attempt %d): %s",
                        row_id,
                        row.number,
                        row.attempts,
                        error,
                    )
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
