"""PolicyService: every rule with its exact message, audit events, notifications queued."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from siprec_recorder.policy.engine import PolicyEngine
from siprec_recorder.policy.errors import NotFoundError, PolicyError, RuleError, ScheduleError
from siprec_recorder.policy.models import PolicyNotification
from siprec_recorder.policy.service import PolicyService
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry, User

N1 = "+32470000001"
MON_10 = datetime(2026, 6, 1, 10, 0, tzinfo=ZoneInfo("Europe/Brussels"))
MON_20 = datetime(2026, 6, 1, 20, 0, tzinfo=ZoneInfo("Europe/Brussels"))


@pytest.fixture
async def svc(db: Database) -> PolicyService:
    service = PolicyService(db)
    await service.set_template("office", ["mon-fri 08:00-18:00"], actor="fm")
    return service


async def message(coro: object) -> str:
    with pytest.raises(PolicyError) as info:
        await coro  # type: ignore[misc]
    return str(info.value)


async def ledger(db: Database) -> list[LedgerEntry]:
    async with db.session() as s:
        return list(await s.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))


async def test_add_show_list(svc: PolicyService, db: Database) -> None:
    view = await svc.add_number(
        "0470 00 00 01", actor="fm", user="alice", user_name="Alice A", template="office", beep=True
    )
    assert view.number == N1 and view.managed and view.status == "auto"
    assert view.template == "office" and view.slots == ("mon-fri 08:00-18:00",)
    assert (view.user, view.user_name, view.mode, view.beep) == (
        "alice",
        "Alice A",
        "professional",
        True,
    )
    assert await svc.get_number("tel:+32470000001") == view
    plain = await svc.add_number("+32470000002", actor="fm", user="bob")
    assert (plain.managed, plain.status, plain.mode, plain.slots) == (
        False,
        "manual",
        "professional",
        (),
    )
    assert [v.number for v in await svc.list_numbers()] == [N1, "+32470000002"]
    assert [v.number for v in await svc.list_numbers(user="bob")] == ["+32470000002"]
    async with db.session() as s:
        alice = await s.scalar(select(User).where(User.login == "alice"))
        assert alice is not None and alice.role == "standard" and alice.password_hash is None
    entries = await ledger(db)
    actions = [e.action for e in entries]
    assert actions == [
        "policy.template.set",
        "policy.user.created",
        "policy.number.added",
        "policy.user.created",
        "policy.number.added",
    ]
    added = json.loads(entries[2].details)
    assert added["before"] is None and added["after"]["number"] == N1
    assert entries[2].actor == "fm" and entries[2].subject == f"number:{N1}"
    async with db.session() as s:
        assert await verify_chain(s) == []


async def test_rule_messages(svc: PolicyService) -> None:
    await svc.add_number(N1, actor="fm", user="alice", template="office")
    assert await message(svc.add_number(N1, actor="fm")) == f"number {N1} already exists"
    assert await message(svc.add_number("112", actor="fm")) == (
        '"112" is not a full phone number (E.164, e.g. +32470000001)'
    )
    assert await message(
        svc.add_number("+32470000002", actor="fm", managed=False, status="auto")
    ) == ("number +32470000002: auto cannot be set on an unmanaged number")
    assert await message(svc.add_number("+32470000002", actor="fm", mode="private")) == (
        "number +32470000002: an unmanaged number can only be manual + professional"
    )
    assert await message(svc.add_number("+32470000002", actor="fm", managed=True)) == (
        "number +32470000002: a managed number has at least one slot"
    )
    assert await message(svc.add_number("+32470000002", actor="fm", template="nope")) == (
        "template nope does not exist"
    )
    assert await message(svc.add_number("+32470000002", actor="fm", mode="secret")) == (
        'number +32470000002: mode must be professional or private, not "secret"'
    )
    assert await message(svc.set_number("+32470000009", actor="fm", beep=True)) == (
        "number +32470000009 does not exist"
    )
    assert await message(svc.set_number(N1, actor="fm", managed=False)) == (
        f"number {N1}: auto cannot be set on an unmanaged number"
    )
    assert await message(svc.add_number("+32470000002", actor="fm", slots=["mon 08:00-08:03"])) == (
        'number +32470000002: slot "mon 08:00-08:03" lasts 3 minutes, the minimum is 5'
    )
    # nothing of the refused numbers was written
    assert [v.number for v in await svc.list_numbers()] == [N1]


async def test_unmanaged_to_managed_and_back(svc: PolicyService) -> None:
    await svc.add_number(N1, actor="fm", user="alice")
    assert await message(svc.set_number(N1, actor="fm", managed=True)) == (
        f"number {N1}: a managed number has at least one slot"
    )
    await svc.set_schedule(N1, actor="fm", template="office")
    view = await svc.set_number(N1, actor="fm", managed=True, status="auto")
    assert view.managed and view.status == "auto"
    view = await svc.set_number(N1, actor="fm", managed=False, status="manual")
    assert not view.managed


async def test_mode_by_user_needs_self_service(svc: PolicyService) -> None:
    await svc.add_number(N1, actor="fm", user="alice", template="office", status="manual")
    assert await message(svc.set_mode(N1, "private", actor="alice", by_user=True)) == (
        f"number {N1}: self service is off, the user cannot change the mode"
    )
    await svc.set_number(N1, actor="fm", self_service=True)
    assert (await svc.set_mode(N1, "private", actor="alice", by_user=True)).mode == "private"
    await svc.set_number(N1, actor="fm", status="auto")
    assert await message(svc.set_mode(N1, "professional", actor="alice", by_user=True)) == (
        f"number {N1}: status is auto, the schedule decides (the mode applies to manual"
        " numbers only)"
    )
    await svc.add_number("+32470000002", actor="fm", user="bob", self_service=True)
    assert await message(svc.set_mode("+32470000002", "private", actor="bob", by_user=True)) == (
        "number +32470000002: an unmanaged number can only be manual + professional"
    )


async def test_schedule_slots_atomic(svc: PolicyService, db: Database) -> None:
    await svc.add_number(N1, actor="fm", user="alice", slots=["mon-fri 08:00-12:00"])
    before = await svc.get_number(N1)
    with pytest.raises(ScheduleError) as info:
        await svc.set_schedule(
            N1, actor="fm", slots=["mon-fri 09:00-17:00", "wed 16:00-18:00", "sun 23:58-00:01"]
        )
    assert info.value.problems == (
        f'number {N1}: slot "sun 23:58-00:01" lasts 3 minutes, the minimum is 5',
        f'number {N1}: slots "mon-fri 09:00-17:00" and "wed 16:00-18:00" overlap on'
        " wed 16:00-17:00",
    )
    assert await svc.get_number(N1) == before
    # a whole new set replaces the old one in one step, even where they would overlap
    view = await svc.set_schedule(N1, actor="fm", slots=["mon-fri 08:00-18:00", "sat 09:00-12:00"])
    assert view.slots == ("mon-fri 08:00-18:00", "sat 09:00-12:00") and view.template is None
    view = await svc.set_schedule(N1, actor="fm", template="office")
    assert view.template == "office"
    assert await message(svc.set_schedule(N1, actor="fm", slots=[])) == (
        f"number {N1}: a managed number has at least one slot"
    )
    assert await message(svc.set_schedule(N1, actor="fm")) == (
        f"number {N1}: give a template or slots (one of them)"
    )
    events = [e for e in await ledger(db) if e.action == "policy.number.schedule"]
    assert len(events) == 2
    details = json.loads(events[0].details)
    assert details["before"]["slots"] == ["mon-fri 08:00-12:00"]
    assert details["after"]["slots"] == ["mon-fri 08:00-18:00", "sat 09:00-12:00"]


async def test_templates(svc: PolicyService, db: Database) -> None:
    engine = PolicyEngine(db)
    svc.add_listener(engine.invalidate)
    await svc.add_number(N1, actor="fm", user="alice", template="office")
    await svc.add_number("+32470000002", actor="fm", user="bob", template="office")
    assert (await engine.decide([N1], MON_20)).reason == "outside-schedule"
    # editing the template changes every number that uses it
    view = await svc.set_template("office", ["mon-fri 07:00-21:00"], actor="fm")
    assert view.numbers == 2
    assert (await svc.get_number("+32470000002")).slots == ("mon-fri 07:00-21:00",)
    assert (await engine.decide([N1], MON_20)).record
    assert await message(svc.set_template("office", [], actor="fm")) == (
        "template office: at least one slot is required"
    )
    assert await message(
        svc.set_template("office", ["sat 10:00-12:00", "sat 11:00-13:00"], actor="fm")
    ) == (
        'template office: slots "sat 10:00-12:00" and "sat 11:00-13:00" overlap on sat 11:00-12:00'
    )
    assert await message(svc.delete_template("office", actor="fm")) == (
        f"template office is used by 2 numbers ({N1}, +32470000002)"
    )
    assert await message(svc.delete_template("nope", actor="fm")) == "template nope does not exist"
    await svc.set_template("night", ["mon-sun 22:00-06:00"], actor="fm")
    assert [t.to_dict() for t in await svc.list_templates()] == [
        {"name": "night", "slots": ["mon-sun 22:00-06:00"], "numbers": 0},
        {"name": "office", "slots": ["mon-fri 07:00-21:00"], "numbers": 2},
    ]
    await svc.delete_template("night", actor="fm")
    assert [t.name for t in await svc.list_templates()] == ["office"]
    assert await message(svc.set_template("  ", ["mon 08:00-09:00"], actor="fm")) == (
        "template name '' is not valid: 1-100 letters, digits, spaces or . _ - @ +,"
        " starting with a letter or digit"
    )


async def test_remove_is_soft_and_blocks_changes(svc: PolicyService, db: Database) -> None:
    engine = PolicyEngine(db)
    svc.add_listener(engine.invalidate)
    await svc.add_number(N1, actor="fm", user="alice")
    assert (await engine.decide([N1], MON_10)).record
    view = await svc.remove_number(N1, actor="fm")
    assert not view.active
    assert (await engine.decide([N1], MON_10)).reason == "number-inactive"
    assert await message(svc.remove_number(N1, actor="fm")) == f"number {N1} is not active"
    assert await message(svc.set_mode(N1, "professional", actor="fm")) == (
        f"number {N1} is not active"
    )
    assert await message(svc.set_schedule(N1, actor="fm", template="office")) == (
        f"number {N1} is not active"
    )
    assert await message(svc.set_number(N1, actor="fm", beep=True)) == (
        f"number {N1} is not active"
    )
    assert await message(svc.add_number(N1, actor="fm")) == (
        f"number {N1} already exists (inactive: use numbers set --active yes)"
    )
    assert (await svc.set_number(N1, actor="fm", active=True)).active
    assert (await engine.decide([N1], MON_10)).record
    assert [v.number for v in await svc.list_numbers(include_inactive=False)] == [N1]


async def test_delete_template_used_only_by_inactive_numbers(svc: PolicyService) -> None:
    await svc.add_number(N1, actor="fm", user="alice", template="office")
    await svc.remove_number(N1, actor="fm")
    await svc.delete_template("office", actor="fm")
    view = await svc.get_number(N1)
    assert (view.template, view.slots, view.active) == (None, ("mon-fri 08:00-18:00",), False)
    assert (await svc.set_number(N1, actor="fm", active=True)).active


async def test_notifications_queued_for_fleet_manager_changes(
    svc: PolicyService, db: Database
) -> None:
    await svc.add_number(
        N1,
        actor="fm",
        user="alice",
        template="office",
        status="manual",
        notify=True,
        self_service=True,
    )
    await svc.add_number("+32470000002", actor="fm", user="bob", template="office", status="manual")
    await svc.set_mode(N1, "private", actor="fm")  # notified
    await svc.set_mode(N1, "professional", actor="alice", by_user=True)  # the user: not notified
    await svc.set_mode("+32470000002", "private", actor="fm")  # notify off
    await svc.set_number(N1, actor="fm", beep=True)  # not a notifiable field
    await svc.set_number(N1, actor="fm", status="auto")  # notified
    await svc.remove_number(N1, actor="fm")  # notified
    pending = await svc.pending_notifications()
    assert [p["payload"]["changes"] for p in pending] == [
        {"mode": {"before": "professional", "after": "private"}},
        {"status": {"before": "manual", "after": "auto"}},
        {"active": {"before": True, "after": False}},
    ]
    first = pending[0]["payload"]
    assert first["number"] == N1 and first["user"] == {"login": "alice", "name": "alice"}
    assert first["type"] == "number.changed" and first["actor"] == "fm"
    async with db.session() as s:
        rows = list(await s.scalars(select(PolicyNotification)))
    assert all(r.delivered_at is None and r.attempts == 0 for r in rows)


async def test_failed_change_queues_nothing(svc: PolicyService) -> None:
    await svc.add_number(N1, actor="fm", user="alice", notify=True)
    with pytest.raises(RuleError):
        await svc.set_number(N1, actor="fm", mode="private")
    assert await svc.pending_notifications() == []


async def test_not_found(svc: PolicyService) -> None:
    with pytest.raises(NotFoundError, match=r"^number \+32470000009 does not exist$"):
        await svc.get_number("+32470000009")
    with pytest.raises(NotFoundError, match=r"^template x does not exist$"):
        await svc.get_template("x")
