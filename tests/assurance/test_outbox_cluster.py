"""The alert outbox on a cluster: several nodes (each its own database engine, event loop and
thread) deliver from one shared database, SQLite and PostgreSQL, to one real webhook on
loopback. Each alert is POSTed once; a node that dies or stalls after its claim holds the row
only until its lease ends (time injected, no sleeping)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from siprec_recorder.assurance.alerts import NewAlert, Outbox, raise_alert
from siprec_recorder.assurance.channels import WebhookChannel
from siprec_recorder.assurance.models import AlertDelivery
from siprec_recorder.storage.db import Database

from .receivers import Webhook, wait_until

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def sample(key: str) -> NewAlert:
    return NewAlert(
        rule="recording_failed",
        key=key,
        severity="critical",
        subject=f"recording:{key}",
        summary=f"recording of +32470000001 failed: finaliser error ({key})",
        details={"recording_id": key},
    )


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook(status=204, delay=0.02)
    w.start()
    yield w
    w.stop()


async def deliveries(db: Database) -> list[AlertDelivery]:
    async with db.session() as session:
        found = await session.scalars(select(AlertDelivery).order_by(AlertDelivery.alert_id))
        return list(found)


def ids(webhook: Webhook) -> list[str]:
    return [str(json.loads(body)["id"]) for _, body in webhook.received]


@pytest.mark.parametrize("nodes", [2, 3])
async def test_nodes_polling_together_send_each_alert_once(
    shared_db: Database, shared_url: str, webhook: Webhook, nodes: int
) -> None:
    alerts = [sample(f"r{i}") for i in range(50)]
    for alert in alerts:
        assert await raise_alert(shared_db, alert, ["webhook"], now=T)
    start = threading.Barrier(nodes)

    async def node() -> int:
        db = Database(shared_url)
        await db.open()
        outbox = Outbox(db, [WebhookChannel(webhook.url)], concurrency=4)
        try:
            start.wait(30)  # every node polls the same due rows at the same moment
            done = 0
            while n := await outbox.deliver_due(T):
                done += n
            return done
        finally:
            await db.close()

    counts = await asyncio.gather(*(asyncio.to_thread(asyncio.run, node()) for _ in range(nodes)))

    assert sum(counts) == 50
    assert sorted(ids(webhook)) == sorted(a.id for a in alerts)  # each exactly once
    assert all(h["x-siprec-alert-id"] == json.loads(b)["id"] for h, b in webhook.received)
    rows = await deliveries(shared_db)
    assert len(rows) == 50
    assert all(r.delivered_at == T and r.attempts == 1 and r.last_error is None for r in rows)


async def test_a_node_killed_after_its_claim_holds_the_row_until_its_lease_ends(
    shared_db: Database, shared_url: str
) -> None:
    webhook = Webhook(status=204, holding=1)  # node A's request never gets an answer
    webhook.start()
    other = Database(shared_url)
    await other.open()
    channel = WebhookChannel(webhook.url, timeout=10)
    a = Outbox(shared_db, [channel], delivery_timeout_s=10, lease_margin_s=20)
    b = Outbox(other, [channel], delivery_timeout_s=10, lease_margin_s=20)
    try:
        await raise_alert(shared_db, sample("r1"), ["webhook"], now=T)
        killed = asyncio.create_task(a.deliver_due(T))
        await asyncio.to_thread(wait_until, lambda: len(webhook.received) == 1)
        killed.cancel()  # node A dies in the middle of its delivery: no result is written
        with pytest.raises(asyncio.CancelledError):
            await killed

        (row,) = await deliveries(shared_db)
        lease = row.next_attempt_at
        assert row.delivered_at is None and row.attempts == 0
        assert T + timedelta(seconds=30) <= lease < T + timedelta(seconds=31)
        # node B does not touch it while A's lease lasts...
        assert await b.deliver_due(T + timedelta(seconds=1)) == 0
        assert await b.deliver_due(lease - timedelta(microseconds=1)) == 0
        assert len(webhook.received) == 1 and b.pending == {"webhook": 1}
        # ...and delivers it once it is over
        assert await b.deliver_due(lease) == 1
        assert ids(webhook) == [sample("r1").id] * 2
        (row,) = await deliveries(shared_db)
        assert row.delivered_at == lease and row.attempts == 1
        assert b.pending == {"webhook": 0} and b.delivered == {"webhook": 1}
    finally:
        await other.close()
        webhook.stop()


async def test_a_result_written_after_the_lease_is_dropped(
    shared_db: Database, shared_url: str
) -> None:
    webhook = Webhook(status=204, holding=1)  # node A stalls past its lease
    webhook.start()
    other = Database(shared_url)
    await other.open()
    channel = WebhookChannel(webhook.url, timeout=30)
    a = Outbox(shared_db, [channel], delivery_timeout_s=30, lease_margin_s=5)
    b = Outbox(other, [channel], delivery_timeout_s=30, lease_margin_s=5)
    try:
        await raise_alert(shared_db, sample("r1"), ["webhook"], now=T)
        stalled = asyncio.create_task(a.deliver_due(T))
        await asyncio.to_thread(wait_until, lambda: len(webhook.received) == 1)
        (row,) = await deliveries(shared_db)
        later = row.next_attempt_at + timedelta(seconds=1)
        assert await b.deliver_due(later) == 1  # B takes the row over after A's lease
        webhook.release()  # A's answer finally comes: 204, but the row is not A's any more
        assert await stalled == 0
        assert a.lost_leases == 1 and a.delivered == {"webhook": 0}
        assert b.lost_leases == 0 and b.delivered == {"webhook": 1}
        (row,) = await deliveries(shared_db)
        assert row.delivered_at == later and row.attempts == 1
    finally:
        await other.close()
        webhook.stop()
