"""Notification delivery on a cluster: several nodes (each its own database engine, event loop
and thread) run the worker on one shared database, SQLite and PostgreSQL, against one real
webhook on loopback. Each notification is POSTed once; a node that dies or stalls after its
claim holds the row only until its lease ends (time injected, no sleeping)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from siprec_recorder.policy.models import PolicyNotification
from siprec_recorder.policy.notify import NotificationWorker
from siprec_recorder.policy.service import PolicyService
from siprec_recorder.storage.db import Database
from tests.assurance.receivers import Webhook, wait_until

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
NUMBERS = [f"+3247000{i:04d}" for i in range(25)]  # two notifications each: 50


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook(status=204, delay=0.02)
    w.start()
    yield w
    w.stop()


async def queue(db: Database, numbers: list[str]) -> None:
    """Two notifications of each number (a mode change, then a status change)."""
    svc = PolicyService(db, clock=lambda: T0)
    await svc.set_template("office", ["mon-fri 08:00-18:00"], actor="fm")
    for number in numbers:
        await svc.add_number(
            number, actor="fm", user="alice", template="office", status="manual", notify=True
        )
        await svc.set_mode(number, "private", actor="fm")
        await svc.set_number(number, actor="fm", status="auto")


def sent(webhook: Webhook) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in webhook.received]


async def rows(db: Database) -> list[PolicyNotification]:
    async with db.session() as session:
        found = await session.scalars(select(PolicyNotification).order_by(PolicyNotification.id))
        return list(found)


@pytest.mark.parametrize("nodes", [2, 3])
async def test_nodes_polling_together_send_each_notification_once(
    shared_db: Database, shared_url: str, webhook: Webhook, nodes: int
) -> None:
    await queue(shared_db, NUMBERS)
    queued = await rows(shared_db)
    assert len(queued) == 50
    start = threading.Barrier(nodes)

    async def node() -> int:
        db = Database(shared_url)
        await db.open()
        worker = NotificationWorker(db, webhook.url, timeout=10.0, concurrency=8)
        try:
            start.wait(30)  # every node polls the same due rows at the same moment
            return await worker.deliver_due(T0)
        finally:
            await worker.stop()
            await db.close()

    counts = await asyncio.gather(*(asyncio.to_thread(asyncio.run, node()) for _ in range(nodes)))

    assert sum(counts) == 50
    ids = [doc["id"] for doc in sent(webhook)]
    assert sorted(ids) == sorted(json.loads(r.payload)["id"] for r in queued)  # once each
    assert all(h["idempotency-key"] == json.loads(b)["id"] for h, b in webhook.received)
    # the notifications of one number still arrive in order, whichever node sent them
    for number in NUMBERS:
        changes = [doc["changes"] for doc in sent(webhook) if doc["number"] == number]
        assert [list(c) for c in changes] == [["mode"], ["status"]], number
    after = await rows(shared_db)
    assert all(r.delivered_at == T0 and r.attempts == 1 and r.last_error is None for r in after)


async def test_a_node_killed_after_its_claim_holds_the_row_until_its_lease_ends(
    shared_db: Database, shared_url: str
) -> None:
    webhook = Webhook(status=204, holding=1)  # node A's request never gets an answer
    webhook.start()
    other = Database(shared_url)
    await other.open()
    a = NotificationWorker(shared_db, webhook.url, timeout=10.0, lease_margin=20.0)
    b = NotificationWorker(other, webhook.url, timeout=10.0, lease_margin=20.0)
    try:
        await queue(shared_db, NUMBERS[:1])
        first = (await rows(shared_db))[0]
        killed = asyncio.create_task(a.deliver_due(T0))
        await asyncio.to_thread(wait_until, lambda: len(webhook.received) == 1)
        killed.cancel()  # node A dies in the middle of its POST: no result is written
        with pytest.raises(asyncio.CancelledError):
            await killed

        row = (await rows(shared_db))[0]
        lease = row.next_attempt_at
        assert row.delivered_at is None and row.attempts == 0
        assert T0 + timedelta(seconds=30) <= lease < T0 + timedelta(seconds=31)
        # node B does not touch it while A's lease lasts...
        assert await b.deliver_due(T0 + timedelta(seconds=1)) == 0
        assert await b.deliver_due(lease - timedelta(microseconds=1)) == 0
        assert len(webhook.received) == 1
        assert await b.next_due() == lease
        # ...and delivers it once it is over, then the number's second notification
        assert await b.deliver_due(lease) == 2
        assert len(webhook.received) == 3
        assert sent(webhook)[1]["id"] == json.loads(first.payload)["id"]
        assert list(sent(webhook)[2]["changes"]) == ["status"]
        done = await rows(shared_db)
        assert [(r.delivered_at, r.attempts) for r in done] == [(lease, 1), (lease, 1)]
        assert await a.deliver_due(lease) == 0
    finally:
        await a.stop()
        await b.stop()
        await other.close()
        webhook.stop()


async def test_a_result_written_after_the_lease_is_dropped(
    shared_db: Database, shared_url: str
) -> None:
    webhook = Webhook(status=204, holding=1)  # node A stalls past its lease
    webhook.start()
    other = Database(shared_url)
    await other.open()
    a = NotificationWorker(shared_db, webhook.url, timeout=30.0, lease_margin=5.0)
    b = NotificationWorker(other, webhook.url, timeout=30.0, lease_margin=5.0)
    try:
        await queue(shared_db, NUMBERS[:1])
        stalled = asyncio.create_task(a.deliver_due(T0))
        await asyncio.to_thread(wait_until, lambda: len(webhook.received) == 1)
        lease = (await rows(shared_db))[0].next_attempt_at
        # B takes the row over after A's lease and delivers it (and the number's second)
        later = lease + timedelta(seconds=1)
        assert await b.deliver_due(later) == 2
        webhook.release()  # A's answer finally comes: 204, but the row is not A's any more
        assert await stalled == 0
        assert a.lost_leases == 1 and b.lost_leases == 0
        done = await rows(shared_db)
        assert [(r.delivered_at, r.attempts) for r in done] == [(later, 1), (later, 1)]
        assert len(webhook.received) == 3
    finally:
        await a.stop()
        await b.stop()
        await other.close()
        webhook.stop()
