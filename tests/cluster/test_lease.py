"""Node leases, takeover claims and run-once jobs on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siprec_recorder.cluster.lease import DuplicateNode, NodeLease
from siprec_recorder.cluster.node import NodeService
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.spool import SpoolStore


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_second_live_node_with_the_same_id_is_refused(db: Database) -> None:
    first = NodeLease(db, "rec-1", lease_seconds=1.0, host="host-a")
    await first.acquire()

    async def beat() -> None:
        while True:
            await asyncio.sleep(0.1)
            assert await first.renew()

    beating = asyncio.create_task(beat())
    try:
        second = NodeLease(db, "rec-1", lease_seconds=1.0, host="host-b")
        with pytest.raises(DuplicateNode) as exc:
            await second.acquire()
        message = str(exc.value)
        assert "\n" not in message
        assert "node 'rec-1' is already running (host host-a" in message
        assert "give every node its own node_id" in message
    finally:
        beating.cancel()
    assert await first.renew()  # the refused process took nothing


async def test_a_lease_without_heartbeat_is_taken_after_one_lease(db: Database) -> None:
    old = NodeLease(db, "rec-1", lease_seconds=1.0, host="host-a")
    await old.acquire()
    t0 = time.monotonic()
    new = NodeLease(db, "rec-1", lease_seconds=1.0, host="host-b")
    await new.acquire()
    assert 0.5 < time.monotonic() - t0 < 4
    assert not await old.renew()  # the old holder lost it
    assert await new.renew()


async def test_own_previous_life_is_taken_at_once(db: Database) -> None:
    crashed = NodeLease(db, "rec-1", lease_seconds=30.0, host="host-a", pid=_dead_pid())
    await crashed.acquire()
    t0 = time.monotonic()
    restarted = NodeLease(db, "rec-1", lease_seconds=30.0, host="host-a")
    await restarted.acquire()
    assert time.monotonic() - t0 < 1.0
    assert await restarted.renew() and not await crashed.renew()


async def test_exactly_one_survivor_claims_a_dead_node(db: Database) -> None:
    clock = [1000.0]
    dead = NodeLease(db, "dead", lease_seconds=5.0, clock=lambda: clock[0])
    await dead.acquire()
    survivors = [
        NodeLease(db, f"s{i}", lease_seconds=5.0, clock=lambda: clock[0]) for i in range(4)
    ]
    for s in survivors:
        await s.acquire()
    assert [await s.dead_nodes() for s in survivors] == [[]] * 4  # alive: nobody touches it
    clock[0] += 6.0
    for s in survivors:
        assert await s.renew()
    assert await survivors[0].dead_nodes() == ["dead"]
    wins = await asyncio.gather(*(s.claim_takeover("dead") for s in survivors))
    assert sorted(wins) == [False, False, False, True]
    winner = survivors[wins.index(True)]
    assert [await s.dead_nodes() for s in survivors] == [[]] * 4  # taking, by a live taker
    await winner.finish_takeover("dead", done=True)
    row = await winner.get("dead")
    assert row is not None and row.state == "stopped"


async def test_a_takeover_whose_taker_died_is_claimed_again(db: Database) -> None:
    clock = [1000.0]
    leases = {n: NodeLease(db, n, lease_seconds=5.0, clock=lambda: clock[0]) for n in "abc"}
    for lease in leases.values():
        await lease.acquire()
    clock[0] += 6.0
    await leases["b"].renew()
    await leases["c"].renew()
    assert await leases["b"].claim_takeover("a")
    clock[0] += 6.0  # b dies in the middle of the takeover
    await leases["c"].renew()
    assert sorted(await leases["c"].dead_nodes()) == ["a", "b"]
    assert await leases["c"].claim_takeover("a")


async def test_run_once_job_is_claimed_by_one_node(db: Database) -> None:
    clock = [1000.0]
    leases = [NodeLease(db, f"n{i}", lease_seconds=5.0, clock=lambda: clock[0]) for i in range(3)]
    wins = await asyncio.gather(*(x.claim_job("purge", hold_seconds=60) for x in leases))
    assert sorted(wins) == [False, False, True]
    holder = leases[wins.index(True)]
    assert not await leases[(wins.index(True) + 1) % 3].claim_job("purge", hold_seconds=60)
    await holder.finish_job("purge", "deleted 3")
    # Ran at 1000: a claim for runs "not before 999" is done already; a later slot is free.
    assert not await leases[0].claim_job("purge", hold_seconds=60, not_before=999.0)
    clock[0] += 10
    assert await leases[1].claim_job("purge", hold_seconds=60, not_before=1005.0)


async def test_a_dead_lease_whose_spool_folder_is_stamped_is_left_alone(
    db: Database, tmp_path: Path
) -> None:
    clock = [time.time()]
    dead = NodeLease(db, "b", lease_seconds=5.0, clock=lambda: clock[0])
    alive = NodeLease(db, "a", lease_seconds=5.0, clock=lambda: clock[0])
    await dead.acquire()
    await alive.acquire()
    SpoolStore(tmp_path, "b").open_session("rec1", {"rec_id": "rec1"})
    taken: list[str] = []

    async def take_over(node: str) -> bool:
        taken.append(node)
        return True

    service = NodeService(
        alive, lambda n: SpoolStore(tmp_path, n), take_over, clock=lambda: clock[0]
    )
    SpoolStore(tmp_path, "b").touch_alive(clock[0] + 6.0)  # b still writes to the folder
    clock[0] += 6.0
    await alive.renew()
    assert await service.check() == []
    assert taken == []
    row = await alive.get("b")
    assert row is not None and row.state == "live"  # handed back for a later pass
    clock[0] += 10.0  # b's stamp is old now too
    await alive.renew()
    assert await service.check() == ["b"]
    assert taken == ["b"]


def test_each_node_lists_only_its_own_spools(tmp_path: Path) -> None:
    a, b = SpoolStore(tmp_path, "node-a"), SpoolStore(tmp_path, "node-b")
    a.open_session("reca", {"rec_id": "reca"})
    b.open_session("recb", {"rec_id": "recb"})
    legacy = SpoolStore(tmp_path)
    legacy.open_session("old1", {"rec_id": "old1"})
    assert [o.rec_id for o in a.orphans()] == ["reca"]
    assert [o.rec_id for o in b.orphans()] == ["recb"]
    assert [o.rec_id for o in legacy.orphans()] == ["old1"]  # never a node's folder
    assert a.dir == tmp_path / ".spool" / "@node-a"


async def test_a_long_takeover_does_not_stop_the_takers_heartbeat(
    db: Database, tmp_path: Path
) -> None:
    # Finalising a dead node's spools takes seconds; if the heartbeat waited for it, the
    # taker's own lease would expire and another survivor would take over its live calls.
    dead = NodeLease(db, "b", lease_seconds=1.5)
    taker = NodeLease(db, "a", lease_seconds=1.5)
    watcher = NodeLease(db, "c", lease_seconds=1.5)
    for lease in (dead, taker, watcher):
        await lease.acquire()
    await asyncio.sleep(1.7)  # b never beats: dead
    await taker.renew()
    await watcher.renew()
    started = asyncio.Event()

    async def slow_take_over(node: str) -> bool:
        started.set()
        await asyncio.sleep(4.5)  # three leases long
        return True

    service = NodeService(
        taker,
        lambda n: SpoolStore(tmp_path, n),
        slow_take_over,
        heartbeat_interval=0.1,
        check_interval=0.1,
    )
    await service.start()
    try:
        await asyncio.wait_for(started.wait(), 5)
        for _ in range(35):
            await asyncio.sleep(0.1)
            await watcher.renew()
            assert "a" not in await watcher.dead_nodes()
    finally:
        await service.stop()
