"""Notifications reach a real local webhook, across a restart and a webhook outage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from siprec_recorder.policy.notify import NotificationWorker
from siprec_recorder.policy.service import PolicyService
from siprec_recorder.storage.db import Database

N1 = "+32470000001"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class Receiver:
    """A webhook on 127.0.0.1 that answers 503 to the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                doc = json.loads(body)
                with outer.lock:
                    outer.requests.append({"doc": doc, "key": self.headers.get("Idempotency-Key")})
                    fail = len(outer.requests) <= outer.fail_first
                    if not fail:
                        outer.received.append(doc)
                self.send_response(503 if fail else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=3)
    yield r
    r.close()


async def queue_two(db: Database) -> None:
    svc = PolicyService(db, clock=lambda: T0)
    await svc.set_template("office", ["mon-fri 08:00-18:00"], actor="fm")
    await svc.add_number(
        N1, actor="fm", user="alice", template="office", status="manual", notify=True
    )
    await svc.set_mode(N1, "private", actor="fm")
    await svc.set_number(N1, actor="fm", status="auto")


async def test_survives_restart_and_outage(db_url: str, receiver: Receiver) -> None:
    # first "life" of the recorder: changes are made, the webhook is unreachable
    db = Database(db_url)
    await db.open()
    await queue_two(db)
    dead = NotificationWorker(db, "http://127.0.0.1:9/unreachable", timeout=2.0)
    assert await dead.deliver_due(T0) == 0
    assert await dead.next_due() == T0 + timedelta(seconds=2)
    await dead.stop()
    await db.close()

    # second life: a new database object and worker on the same file; the webhook is up but
    # fails its first three requests
    db = Database(db_url)
    await db.open()
    worker = NotificationWorker(db, receiver.url, backoff_base=2.0, backoff_max=60.0)
    now = T0 + timedelta(seconds=2)
    delivered = 0
    for _ in range(10):
        due = await worker.next_due()
        if due is None:
            break
        now = max(now, due)
        delivered += await worker.deliver_due(now)
    assert delivered == 2
    assert await worker.next_due() is None
    assert len(receiver.requests) == 5  # 3 refused + 2 delivered
    assert [doc["changes"] for doc in receiver.received] == [
        {"mode": {"before": "professional", "after": "private"}},
        {"status": {"before": "manual", "after": "auto"}},
    ]
    assert all(r["key"] == r["doc"]["id"] for r in receiver.requests)
    pending = await PolicyService(db).pending_notifications()
    assert pending == []
    # a third run delivers nothing twice
    assert await worker.deliver_due(now + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 5
    await worker.stop()
    await db.close()


async def test_backoff_grows_and_is_capped(db: Database, receiver: Receiver) -> None:
    await queue_two(db)
    worker = NotificationWorker(db, receiver.url, backoff_base=2.0, backoff_max=5.0)
    assert [worker.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    # notifications of one number go out in order: the second waits for the first
    assert await worker.deliver_due(T0) == 0  # request 1 refused
    pending = await PolicyService(db).pending_notifications()
    assert [p["attempts"] for p in pending] == [1, 0]
    assert pending[0]["last_error"].startswith("HTTP 503")
    assert await worker.next_due() == T0 + timedelta(seconds=2)
    # not due yet: nothing is sent
    assert await worker.deliver_due(T0 + timedelta(seconds=1)) == 0
    assert len(receiver.requests) == 1
    assert await worker.deliver_due(T0 + timedelta(seconds=2)) == 0  # request 2 refused
    assert await worker.next_due() == T0 + timedelta(seconds=6)
    assert await worker.deliver_due(T0 + timedelta(seconds=6)) == 0  # request 3 refused
    assert await worker.next_due() == T0 + timedelta(seconds=11)  # capped at 5 s
    assert await worker.deliver_due(T0 + timedelta(seconds=11)) == 2  # requests 4, 5
    assert [d["changes"] for d in receiver.received] == [
        {"mode": {"before": "professional", "after": "private"}},
        {"status": {"before": "manual", "after": "auto"}},
    ]
    await worker.stop()


async def test_background_task_delivers(db: Database) -> None:
    r = Receiver(fail_first=1)
    try:
        svc = PolicyService(db)
        await svc.add_number(N1, actor="fm", user="alice", notify=True, self_service=True)
        await svc.remove_number(N1, actor="fm")
        worker = NotificationWorker(db, r.url, backoff_base=0.1, poll_interval=0.1)
        await worker.start()
        for _ in range(100):
            if r.received:
                break
            import asyncio

            await asyncio.sleep(0.05)
        await worker.stop()
        assert [d["changes"] for d in r.received] == [{"active": {"before": True, "after": False}}]
    finally:
        r.close()
