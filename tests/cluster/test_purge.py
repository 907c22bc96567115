"""The retention purge runs once across the cluster and reports correctly when two start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from siprec_recorder.cluster.jobs import PurgeSchedule
from siprec_recorder.compliance.retention import purge, purge_once, set_hold
from siprec_recorder.storage.integrity import verify
from tests.compliance.conftest import Store, store  # noqa: F401 - shared fixture

OLD = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2032, 6, 1, 12, 0, tzinfo=UTC)


async def test_two_purges_at_once_report_every_recording_once(store: Store) -> None:  # noqa: F811
    ids = [await store.add(OLD + timedelta(seconds=i), seconds=0.5) for i in range(6)]
    await set_hold(store.db, ids[0], actor="a", reason="r", now=NOW)
    first, second = await asyncio.gather(
        purge_once(store.db, store.layout, NOW, runner="node-a"),
        purge_once(store.db, store.layout, NOW, runner="node-b"),
    )
    ran = [r for r in (first, second) if r.busy is None]
    assert len(ran) == 1, (first, second)
    assert [r.busy for r in (first, second) if r.busy] == [
        "another purge is running or has just run"
    ]
    assert sorted(p.rec_id for p in ran[0].purged) == sorted(ids[1:])
    assert ran[0].held == [ids[0]]
    assert await verify(store.db, store.layout) == []


async def test_racing_purges_without_the_claim_never_count_twice(store: Store) -> None:  # noqa: F811
    ids = [await store.add(OLD + timedelta(seconds=i), seconds=0.5) for i in range(6)]
    a, b = await asyncio.gather(
        purge(store.db, store.layout, NOW), purge(store.db, store.layout, NOW)
    )
    purged = [p.rec_id for p in a.purged] + [p.rec_id for p in b.purged]
    assert sorted(set(purged)) == sorted(ids)
    assert a.held == [] and b.held == []  # a row another run took is not "on hold"


async def test_scheduled_purge_runs_once_a_day_across_nodes(store: Store) -> None:  # noqa: F811
    ids = [await store.add(OLD + timedelta(seconds=i), seconds=0.5) for i in range(3)]
    zone = ZoneInfo("Europe/Brussels")
    clock = [datetime(2032, 6, 1, 1, 30, tzinfo=zone)]
    nodes = [
        PurgeSchedule(
            store.db, store.layout, node_id=f"n{i}", hour=2, zone=zone, default_years=5,
            now=lambda: clock[0],
        )
        for i in range(3)
    ]  # fmt: skip
    assert [await n.tick() for n in nodes] == [None, None, None]  # before 02:00
    clock[0] = datetime(2032, 6, 1, 2, 5, tzinfo=zone)
    reports = await asyncio.gather(*(n.tick() for n in nodes))
    done = [r for r in reports if r is not None]
    assert len(done) == 1 and sorted(p.rec_id for p in done[0].purged) == sorted(ids)
    clock[0] = datetime(2032, 6, 1, 9, 0, tzinfo=zone)  # later the same day: not again
    assert [await n.tick() for n in nodes] == [None, None, None]
    clock[0] = datetime(2032, 6, 2, 2, 1, tzinfo=zone)  # the next day: once more
    assert sum(1 for r in await asyncio.gather(*(n.tick() for n in nodes)) if r) == 1
