"""PolicyEngine.decide: the decision matrix, on a real SQLite database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from siprec_recorder.errors import ConfigError
from siprec_recorder.policy import engine as engine_module
from siprec_recorder.policy.db import bump_policy_version, transaction
from siprec_recorder.policy.engine import Decision, NumberRule, PolicyEngine
from siprec_recorder.policy.models import (
    PolicyCounter,
    PolicyNumber,
    PolicyNumberSlot,
    PolicyTemplate,
    PolicyTemplateSlot,
)
from siprec_recorder.policy.settings import PolicySettings
from siprec_recorder.storage.db import Database

BRU = ZoneInfo("Europe/Brussels")
# 2026-06-01 is a Monday
MON_10 = datetime(2026, 6, 1, 10, 0, tzinfo=BRU)
MON_20 = datetime(2026, 6, 1, 20, 0, tzinfo=BRU)
EXTERNAL = "tel:+3225551234"


async def seed(db: Database) -> None:
    async with transaction(db) as s:
        office = PolicyTemplate(name="office")
        s.add(office)
        await s.flush()
        s.add(PolicyTemplateSlot(template_id=office.id, position=0, spec="mon-fri 08:00-18:00"))
        s.add_all(
            [
                PolicyNumber(
                    number="+32470000001",
                    managed=True,
                    status="auto",
                    template_id=office.id,
                    beep=True,
                ),
                PolicyNumber(number="+32470000002", managed=False, status="manual"),
                PolicyNumber(
                    number="+32470000003",
                    managed=True,
                    status="manual",
                    mode="private",
                    template_id=office.id,
                ),
                PolicyNumber(number="+32470000004", active=False),
                PolicyNumber(number="+32470000005", managed=True, status="auto"),
            ]
        )
        await s.flush()
        own = await s.scalar(select(PolicyNumber.id).where(PolicyNumber.number == "+32470000005"))
        assert own is not None
        s.add(PolicyNumberSlot(number_id=own, position=0, spec="sun 22:00-02:00"))


@pytest.fixture
async def engine(db: Database) -> PolicyEngine:
    await seed(db)
    return PolicyEngine(db, PolicySettings())


def d(
    record: bool, reason: str, number: str | None, *, emergency: bool = False, beep: bool = False
) -> Decision:
    return Decision(
        record=record, reason=reason, recorded_number=number, emergency=emergency, beep=beep
    )


async def test_auto_in_and_out_of_slot(engine: PolicyEngine) -> None:
    aors = ["sip:+32470000001@sbc;user=phone", EXTERNAL]
    assert await engine.decide(aors, MON_10) == d(True, "recorded", "+32470000001", beep=True)
    assert await engine.decide(aors, MON_20) == d(
        False, "outside-schedule", "+32470000001", beep=True
    )
    # the far end may come first; the firm's number is still the recorded one
    assert (await engine.decide([EXTERNAL, "0470000001"], MON_10)).recorded_number == (
        "+32470000001"
    )


async def test_own_slots_across_week_wrap(engine: PolicyEngine) -> None:
    sunday_23 = datetime(2026, 6, 7, 23, 0, tzinfo=BRU)
    monday_01 = datetime(2026, 6, 8, 1, 0, tzinfo=BRU)
    for t in (sunday_23, monday_01):
        assert (await engine.decide(["tel:+32470000005"], t)).record
    assert (await engine.decide(["tel:+32470000005"], MON_10)).reason == "outside-schedule"


async def test_manual_professional_and_private(engine: PolicyEngine) -> None:
    assert await engine.decide(["+32470000002", EXTERNAL], MON_20) == d(
        True, "recorded", "+32470000002"
    )
    assert await engine.decide(["+32470000003", EXTERNAL], MON_10) == d(
        False, "private-mode", "+32470000003"
    )


async def test_inactive_number(engine: PolicyEngine) -> None:
    assert await engine.decide(["tel:+32470000004", EXTERNAL], MON_10) == d(
        False, "number-inactive", "+32470000004"
    )


async def test_unknown_numbers_record_or_decline(db: Database, engine: PolicyEngine) -> None:
    assert await engine.decide([EXTERNAL, "sip:alice@example.com"], MON_10) == d(
        True, "recorded-unknown-number", None
    )
    decline = PolicyEngine(db, PolicySettings(unknown_numbers="decline"))
    assert await decline.decide([EXTERNAL], MON_10) == d(False, "unknown-number", None)
    assert await decline.decide([], MON_10) == d(False, "unknown-number", None)


async def test_any_recording_number_wins(engine: PolicyEngine) -> None:
    # an internal call: one side private, the other recorded -> recorded for the latter
    assert await engine.decide(["+32470000003", "+32470000002"], MON_10) == d(
        True, "recorded", "+32470000002"
    )


@pytest.mark.parametrize(
    "emergency", ["112", "tel:112", "sip:112@sbc", "urn:service:sos.police", "+32112"]
)
async def test_emergency_always_wins(db: Database, engine: PolicyEngine, emergency: str) -> None:
    decision = await engine.decide(["+32470000002", emergency], MON_10)
    assert decision == d(False, "emergency-number", None, emergency=True)
    assert await engine.emergency_calls() == 1
    await engine.close()
    async with db.session() as s:
        counters = dict((await s.execute(select(PolicyCounter.name, PolicyCounter.value))).all())
    # only the counter: no number, no time
    assert counters.get("emergency_calls") == 1


async def test_emergency_counter_counts(db: Database, engine: PolicyEngine) -> None:
    for _ in range(3):
        await engine.decide(["112"], MON_10)
    assert await engine.emergency_calls() == 3
    await engine.decide(["tel:911"], MON_10)
    await engine.close()
    # a new engine on the same database sees the count: it was written
    assert await PolicyEngine(db).emergency_calls() == 4


async def test_the_very_next_decision_sees_a_committed_change(db: Database) -> None:
    await seed(db)
    engine = PolicyEngine(db)
    assert (await engine.decide(["+32470000002"], MON_10)).record
    # another process (its own Database object) changes the mode and bumps the version
    other = Database(db.url)
    try:
        async with transaction(other) as s:
            row = await s.scalar(select(PolicyNumber).where(PolicyNumber.number == "+32470000002"))
            assert row is not None
            row.mode = "private"
            await bump_policy_version(s)
        assert (await engine.decide(["+32470000002"], MON_10)).reason == "private-mode"
        async with transaction(other) as s:
            row = await s.scalar(select(PolicyNumber).where(PolicyNumber.number == "+32470000002"))
            assert row is not None
            row.mode = "professional"
            await bump_policy_version(s)
        assert (await engine.decide(["+32470000002"], MON_10)).record
    finally:
        await other.close()
    # invalidate() reloads too (a change without a version bump, made in this process)
    async with transaction(db) as s:
        row = await s.scalar(select(PolicyNumber).where(PolicyNumber.number == "+32470000002"))
        assert row is not None
        row.mode = "private"
    engine.invalidate()
    assert (await engine.decide(["+32470000002"], MON_10)).reason == "private-mode"
    await engine.close()


async def test_calls_during_a_reload_share_it_and_wait_for_it(db: Database) -> None:
    await seed(db)
    engine = PolicyEngine(db)
    assert (await engine.decide(["+32470000002"], MON_10)).record
    gate = asyncio.Event()
    original = engine_module.load_rules
    loads = 0

    async def slow_load(database: Database) -> dict[str, NumberRule]:
        nonlocal loads
        loads += 1
        await gate.wait()
        return await original(database)

    async with transaction(db) as s:
        row = await s.scalar(select(PolicyNumber).where(PolicyNumber.number == "+32470000002"))
        assert row is not None
        row.mode = "private"
        await bump_policy_version(s)
    engine_module.load_rules = slow_load  # type: ignore[assignment]
    try:
        calls = [asyncio.create_task(engine.decide(["+32470000002"], MON_10)) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert not any(c.done() for c in calls)  # no call decides on the old policy
        gate.set()
        decisions = await asyncio.gather(*calls)
    finally:
        engine_module.load_rules = original  # type: ignore[assignment]
    assert {d.reason for d in decisions} == {"private-mode"}
    assert loads == 1
    await engine.close()


async def test_keyword_form_and_bad_setting(db: Database) -> None:
    engine = PolicyEngine(db, timezone="UTC", emergency_numbers=["999"], unknown_numbers="decline")
    assert (await engine.decide(["999"], MON_10)).emergency
    assert not (await engine.decide(["112"], MON_10)).emergency
    with pytest.raises(ConfigError, match=r"^\[policy\] unknown_numbers: "):
        PolicyEngine(db, unknown_numbers="maybe")


async def test_decide_is_fast_with_many_numbers(db: Database) -> None:
    async with transaction(db) as s:
        office = PolicyTemplate(name="office")
        s.add(office)
        await s.flush()
        s.add(PolicyTemplateSlot(template_id=office.id, position=0, spec="mon-fri 08:00-18:00"))
        await s.execute(
            PolicyNumber.__table__.insert(),
            [
                {
                    "number": f"+3247{i:07d}",
                    "managed": True,
                    "status": "auto",
                    "template_id": office.id,
                    "mode": "professional",
                    "beep": False,
                    "notify": False,
                    "self_service": False,
                    "active": True,
                }
                for i in range(20_000)
            ],
        )
    engine = PolicyEngine(db)
    await engine.decide(["+32470000001"], MON_10)  # loads the snapshot
    n = 2000
    start = time.perf_counter()
    for i in range(n):
        await engine.decide([f"sip:+3247{i:07d}@sbc;user=phone", EXTERNAL], MON_10)
    per_call = (time.perf_counter() - start) / n
    print(f"decide: {per_call * 1e6:.1f} us per call")
    assert per_call < 0.002


def test_decision_is_frozen() -> None:
    decision = d(True, "recorded", "+32470000001")
    with pytest.raises(AttributeError):
        decision.record = False  # type: ignore[misc]
    assert datetime(2026, 1, 1, tzinfo=UTC)


async def test_dst_change_days(db: Database) -> None:
    from siprec_recorder.policy.service import PolicyService

    svc = PolicyService(db)
    engine = PolicyEngine(db)
    svc.add_listener(engine.invalidate)
    await svc.add_number("+32470000001", actor="t", user="a", slots=["sun 01:00-04:00"])
    await svc.add_number("+32470000002", actor="t", user="b", slots=["sun 02:00-02:30"])
    # spring forward, 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC
    spring = [
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), True),  # 01:30 CET
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), True),  # 03:00 CEST
        (datetime(2026, 3, 29, 1, 59, tzinfo=UTC), True),  # 03:59 CEST
        (datetime(2026, 3, 29, 2, 0, tzinfo=UTC), False),  # 04:00 CEST
    ]
    for t, expected in spring:
        assert (await engine.decide(["+32470000001"], t)).record is expected, t
    # a slot inside the skipped hour never records that day
    for minute in range(0, 180, 10):
        t = datetime(2026, 3, 28, 23, 0, tzinfo=UTC) + timedelta(minutes=minute)
        assert (await engine.decide(["+32470000002"], t)).reason == "outside-schedule"
    # fall back, 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:10 happens twice
    first = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)  # 02:10 CEST
    second = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET
    assert (await engine.decide(["+32470000002"], first)).record
    assert (await engine.decide(["+32470000002"], second)).record
    assert not (
        await engine.decide(["+32470000002"], datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    ).record


async def test_participant_forms(engine: PolicyEngine) -> None:
    for aor in (
        "sip:+32470000002@10.0.0.1;user=phone",
        "tel:+32-470-00-00-02",
        "<sip:0470000002@sbc.example.com>",
        '"Bob" <sip:0032470000002@sbc>',
        "32470000002",
    ):
        decision = await engine.decide([aor, "sip:alice@example.com"], MON_20)
        assert decision.recorded_number == "+32470000002", aor


async def test_failed_reload_keeps_the_snapshot(db: Database) -> None:
    await seed(db)
    clock = [0.0]
    engine = PolicyEngine(db, refresh_interval=5.0, monotonic=lambda: clock[0])
    assert (await engine.decide(["+32470000002"], MON_10)).record
    original = engine_module.load_rules

    async def broken(database: Database) -> dict[str, NumberRule]:
        raise RuntimeError("disk on fire")

    engine_module.load_rules = broken  # type: ignore[assignment]
    try:
        engine.invalidate()
        assert (await engine.decide(["+32470000002"], MON_10)).record
        await engine.wait_refreshed()
        # not stale any more: calls do not wait for a reload that keeps failing
        start = time.perf_counter()
        assert (await engine.decide(["+32470000002"], MON_10)).record
        assert time.perf_counter() - start < 0.4
    finally:
        engine_module.load_rules = original  # type: ignore[assignment]
    clock[0] = 10.0
    async with transaction(db) as s:
        await bump_policy_version(s)
    await engine.decide(["+32470000002"], MON_10)
    await engine.wait_refreshed()
    assert (await engine.decide(["+32470000002"], MON_10)).record
    await engine.close()


async def test_calls_arriving_during_the_first_load_share_it(db: Database) -> None:
    # A fresh recorder's first INVITEs find no snapshot. Each used to run its own refresh in
    # turn under the engine's lock, one database round trip per call ahead of it; with the
    # index busy (bench/bench_setup_rate.py at 200 calls/s) the fifth call waited 34 s for
    # its 200 OK and the SRC cancelled it.
    await seed(db)
    engine = PolicyEngine(db)
    gate = asyncio.Event()
    reads = 0
    original = engine_module.read_counter

    async def slow_read(session: object, name: str) -> int:
        nonlocal reads
        reads += 1
        await gate.wait()
        return await original(session, name)  # type: ignore[arg-type]

    engine_module.read_counter = slow_read  # type: ignore[assignment]
    try:
        calls = [asyncio.create_task(engine.decide(["+32470000002"], MON_10)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert reads == 1
        gate.set()
        decisions = await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    finally:
        engine_module.read_counter = original  # type: ignore[assignment]
    assert all(dec.record for dec in decisions)
    assert reads == 1
    await engine.close()


async def test_a_failed_first_load_fails_its_calls_and_the_next_call_retries(
    db: Database,
) -> None:
    await seed(db)
    engine = PolicyEngine(db)
    original = engine_module.load_rules
    failures = 0

    async def broken_once(database: Database) -> dict[str, NumberRule]:
        nonlocal failures
        if failures == 0:
            failures += 1
            await asyncio.sleep(0.01)
            raise RuntimeError("disk on fire")
        return await original(database)

    engine_module.load_rules = broken_once  # type: ignore[assignment]
    try:
        calls = [asyncio.create_task(engine.decide(["+32470000002"], MON_10)) for _ in range(3)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results), results
        assert (await engine.decide(["+32470000002"], MON_10)).record
    finally:
        engine_module.load_rules = original  # type: ignore[assignment]
    await engine.close()
