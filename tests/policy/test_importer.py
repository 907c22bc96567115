"""Bulk import (CSV, XLSX) all or nothing, with every bad row reported; export round trip."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from siprec_recorder.policy.engine import PolicyEngine
from siprec_recorder.policy.errors import CsvImportError, RowProblem, RuleError
from siprec_recorder.policy.importer import (
    CurrentState,
    ExistingNumber,
    export_numbers,
    import_numbers,
    plan_import,
    read_table,
)
from siprec_recorder.policy.models import PolicyNumber
from siprec_recorder.policy.service import PolicyService
from siprec_recorder.storage.db import Database
from siprec_recorder.storage.ledger import verify_chain
from siprec_recorder.storage.models import LedgerEntry, User

HEADER = "number,user,template,managed,status,mode,beep,notify,self_service"


@pytest.fixture
async def svc(db: Database) -> PolicyService:
    service = PolicyService(db)
    await service.set_template("office", ["mon-fri 08:00-18:00"], actor="fm")
    return service


def csv_bytes(*lines: str, bom: bool = False, sep: str = ",") -> bytes:
    text = "\r\n".join(line.replace(",", sep) for line in lines) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


async def test_import_adds_numbers(svc: PolicyService, db: Database) -> None:
    data = csv_bytes(
        HEADER,
        "+32470000001,alice,office,yes,auto,professional,yes,no,no",
        "0470000002,bob,,no,manual,professional,no,yes,yes",
        "",
        "0032 470 00 00 03,carol,office,,,,,,",
    )
    seen: list[tuple[int, int]] = []
    result = await import_numbers(
        db, data, actor="fm", filename="fleet.csv", progress=lambda d, t: seen.append((d, t))
    )
    assert result.to_dict() == {
        "rows": 3,
        "added": 3,
        "changed": 0,
        "unchanged": 0,
        "users_created": 3,
        "dry_run": False,
    }
    views = {v.number: v for v in await svc.list_numbers()}
    assert set(views) == {"+32470000001", "+32470000002", "+32470000003"}
    assert views["+32470000001"].beep and views["+32470000001"].template == "office"
    assert views["+32470000002"].notify and views["+32470000002"].self_service
    carol = views["+32470000003"]
    assert (carol.managed, carol.status, carol.mode, carol.user) == (
        True,
        "auto",
        "professional",
        "carol",
    )
    assert seen and seen[-1][0] == seen[-1][1]
    # rows written by the bulk path read back like any other
    async with db.session() as s:
        bob = await s.scalar(select(User).where(User.login == "bob"))
        assert bob is not None
        assert (bob.name, bob.role, bob.must_change_password, bob.active) == (
            "bob",
            "standard",
            True,
            True,
        )
        assert bob.password_hash is None and bob.created_at.tzinfo is not None
        number = await s.scalar(select(PolicyNumber).where(PolicyNumber.number == "+32470000002"))
        assert number is not None and number.user_id == bob.id
        assert number.notify is True and number.beep is False
        assert number.created_at.tzinfo is not None
    async with db.session() as s:
        events = list(
            await s.scalars(
                select(LedgerEntry).where(LedgerEntry.action == "policy.numbers.imported")
            )
        )
        assert await verify_chain(s) == []
    assert len(events) == 1
    details = json.loads(events[0].details)
    assert details["file"] == "fleet.csv" and details["users_created"] == ["alice", "bob", "carol"]
    assert details["columns"][:3] == ["number", "row", "user"]
    assert details["added"][0] == [
        "+32470000001",
        2,
        "alice",
        True,
        "auto",
        "professional",
        True,
        False,
        False,
        True,
        "office",
        [],
    ]
    assert [a[0] for a in details["added"]] == ["+32470000001", "+32470000002", "+32470000003"]
    assert details["changed"] == []
    # the engine sees the imported numbers
    engine = PolicyEngine(db)
    assert (await engine.decide(["+32470000002"], datetime.now(UTC))).record


async def test_semicolon_and_bom(svc: PolicyService, db: Database) -> None:
    data = csv_bytes(
        HEADER, "+32470000001,alice,office,yes,auto,private,no,no,no", bom=True, sep=";"
    )
    assert (await import_numbers(db, data, actor="fm")).added == 1
    assert (await svc.get_number("+32470000001")).mode == "private"


async def test_all_or_nothing_reports_every_bad_row(svc: PolicyService, db: Database) -> None:
    await svc.add_number("+32470000009", actor="fm", user="zed")
    data = csv_bytes(
        HEADER,
        "+32470000001,alice,office,yes,auto,professional,no,no,no",  # fine
        "+32470000002,bob,nope,yes,auto,professional,no,no,no",  # unknown template
        "+32470000003,carol,,no,auto,professional,no,no,no",  # auto on unmanaged
        "112,dave,,,,,,,",  # not a firm number
        "+32470000001,erin,,,,,,,",  # duplicate
        "+32470000004,,,,,,maybe,,",  # no user, bad bool
        "+32470000005,fred,,yes,manual,professional,no,no,no",  # managed without slots
        "+32470000006,gina,,no,manual,private,no,no,no",  # private on unmanaged
        "+32470000007,hank,,,,weird,,,",  # bad mode
    )
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, data, actor="fm")
    assert info.value.problems == (
        RowProblem(3, "template", "template nope does not exist"),
        RowProblem(4, "status", "number +32470000003: auto cannot be set on an unmanaged number"),
        RowProblem(5, "number", '"112" is not a full phone number (E.164, e.g. +32470000001)'),
        RowProblem(6, "number", "number +32470000001 is also on row 2"),
        RowProblem(7, "beep", 'beep must be yes or no (or on/off), not "maybe"'),
        RowProblem(7, "user", "number +32470000004: a new number needs a user"),
        RowProblem(8, "template", "number +32470000005: a managed number has at least one slot"),
        RowProblem(
            9, "mode", "number +32470000006: an unmanaged number can only be manual + professional"
        ),
        RowProblem(10, "mode", 'mode must be professional or private, not "weird"'),
    )
    assert str(info.value).startswith("import refused, nothing changed: 9 problems\n")
    assert "row 3, template: template nope does not exist" in str(info.value)
    assert info.value.status_hint is None
    # nothing changed: not even the good row, no user created
    assert [v.number for v in await svc.list_numbers()] == ["+32470000009"]
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 1


async def test_header_problems(db: Database) -> None:
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, csv_bytes("number,user,colour", "+32470000001,a,red"), actor="fm")
    assert info.value.problems[0] == RowProblem(1, "colour", "unknown column")
    assert [p.column for p in info.value.problems[1:]] == [
        "template",
        "managed",
        "status",
        "mode",
        "beep",
        "notify",
        "self_service",
    ]
    assert all(p.message == "missing column" for p in info.value.problems[1:])
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, b"", actor="fm")
    assert info.value.problems == (
        RowProblem(1, "file", "the file is empty (a header row is required)"),
    )
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, HEADER.encode() + b"\n+32470000001,\xff\xfe,x\n", actor="fm")
    assert info.value.problems == (
        RowProblem(2, "file", "the file is not UTF-8 text (save it as CSV UTF-8)"),
    )


async def test_slots_column_and_schedule_rules(svc: PolicyService, db: Database) -> None:
    header = HEADER + ",slots"
    bad = csv_bytes(
        header,
        "+32470000001,alice,,yes,auto,,,,,mon 08:00-08:03",
        "+32470000002,bob,,yes,auto,,,,,mon-fri 08:00-12:00|wed 11:00-13:00",
        "+32470000003,carol,office,yes,auto,,,,,sat 10:00-12:00",
        "+32470000004,dave,,yes,auto,,,,,someday",
    )
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, bad, actor="fm")
    assert info.value.problems == (
        RowProblem(
            2,
            "slots",
            'number +32470000001: slot "mon 08:00-08:03" lasts 3 minutes, the minimum is 5',
        ),
        RowProblem(
            3,
            "slots",
            'number +32470000002: slots "mon-fri 08:00-12:00" and "wed 11:00-13:00" overlap on'
            " wed 11:00-12:00",
        ),
        RowProblem(4, "slots", "number +32470000003: give a template or slots, not both"),
        RowProblem(
            5, "slots", 'slot "someday": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-18:00"'
        ),
        RowProblem(5, "slots", "number +32470000004: a managed number has at least one slot"),
    )
    good = csv_bytes(header, "+32470000001,alice,,yes,auto,,,,,mon-fri 08:00-12:00|sat 09:00-10:00")
    assert (await import_numbers(db, good, actor="fm")).added == 1
    view = await svc.get_number("+32470000001")
    assert view.slots == ("mon-fri 08:00-12:00", "sat 09:00-10:00") and view.template is None


async def test_update_existing_and_notify(svc: PolicyService, db: Database) -> None:
    await svc.add_number(
        "+32470000001", actor="fm", user="alice", template="office", status="manual", notify=True
    )
    await svc.add_number("+32470000002", actor="fm", user="bob")
    data = csv_bytes(
        HEADER,
        "+32470000001,,,,,private,yes,,",  # blank cells keep their value
        "+32470000002,,,,,,,,",  # unchanged
    )
    dry = await import_numbers(db, data, actor="fm", dry_run=True)
    assert (dry.added, dry.changed, dry.unchanged, dry.dry_run) == (0, 1, 1, True)
    assert (await svc.get_number("+32470000001")).mode == "professional"
    assert await svc.pending_notifications() == []
    result = await import_numbers(db, data, actor="fm")
    assert (result.changed, result.unchanged) == (1, 1)
    view = await svc.get_number("+32470000001")
    assert (view.mode, view.beep, view.template, view.user) == ("private", True, "office", "alice")
    pending = await svc.pending_notifications()
    assert [p["payload"]["changes"] for p in pending] == [
        {"mode": {"before": "professional", "after": "private"}}
    ]
    async with db.session() as s:
        event = await s.scalar(
            select(LedgerEntry).where(LedgerEntry.action == "policy.numbers.imported")
        )
    assert event is not None and event.actor == "fm"
    assert json.loads(event.details)["changed"] == [
        {
            "number": "+32470000001",
            "row": 2,
            "before": {"mode": "professional", "beep": False},
            "after": {"mode": "private", "beep": True},
        }
    ]


async def test_inactive_number_in_import(svc: PolicyService, db: Database) -> None:
    await svc.add_number("+32470000001", actor="fm", user="alice")
    await svc.remove_number("+32470000001", actor="fm")
    header = HEADER + ",active"
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, csv_bytes(header, "+32470000001,,,,,,yes,,,"), actor="fm")
    assert info.value.problems == (RowProblem(2, "number", "number +32470000001 is not active"),)
    result = await import_numbers(db, csv_bytes(header, "+32470000001,,,,,,yes,,,yes"), actor="fm")
    assert result.changed == 1
    view = await svc.get_number("+32470000001")
    assert view.active and view.beep


async def test_xlsx_import(svc: PolicyService, db: Database, tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER.split(","))
    sheet.append(
        [32470000001, "alice", "office", True, "auto", "professional", False, False, False]
    )
    sheet.append(["+32470000002", "bob", None, "no", "manual", "professional", "no", "yes", "no"])
    buf = io.BytesIO()
    workbook.save(buf)
    result = await import_numbers(db, buf.getvalue(), actor="fm", filename="fleet.xlsx")
    assert result.added == 2
    assert (await svc.get_number("+32470000001")).managed
    assert (await svc.get_number("+32470000002")).notify
    bad = openpyxl.Workbook()
    bsheet = bad.active
    assert bsheet is not None
    bsheet.append(HEADER.split(","))
    bsheet.append([470000003, "carol", None, None, None, None, None, None, None])
    buf = io.BytesIO()
    bad.save(buf)
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, buf.getvalue(), actor="fm")
    assert info.value.problems == (
        RowProblem(
            2, "number", '"470000003" is not a full phone number (E.164, e.g. +32470000001)'
        ),
    )
    with pytest.raises(CsvImportError) as info:
        await import_numbers(db, b"PK\x03\x04garbage", actor="fm")
    assert info.value.problems[0].column == "file"


async def test_export_round_trip(svc: PolicyService, db: Database, tmp_path: Path) -> None:
    await svc.add_number(
        "+32470000001", actor="fm", user="alice", user_name="Alice A", template="office", beep=True
    )
    await svc.add_number("+32470000002", actor="fm", user="bob", slots=["sat 09:00-12:00"])
    await svc.add_number("+32470000003", actor="fm", user="carol")
    await svc.remove_number("+32470000003", actor="fm")
    for name in ("numbers.csv", "numbers.xlsx"):
        path = tmp_path / name
        assert await export_numbers(svc, path) == 3
        rows = read_table(path.read_bytes())
        assert rows[0][:9] == HEADER.split(",")
        assert rows[2][11] == "sat 09:00-12:00"
        result = await import_numbers(db, path.read_bytes(), actor="fm")
        assert (result.rows, result.added, result.changed, result.unchanged) == (3, 0, 0, 3)


async def test_import_refused_if_policy_changed_meanwhile(svc: PolicyService, db: Database) -> None:
    from siprec_recorder.policy import importer

    original = importer.load_state

    async def slow_load(database: Database) -> CurrentState:
        state = await original(database)
        await svc.add_number("+32470000009", actor="fm", user="zed")
        return state

    importer.load_state = slow_load  # type: ignore[assignment]
    try:
        with pytest.raises(RuleError, match="changed while the file was being checked"):
            await import_numbers(db, csv_bytes(HEADER, "+32470000001,alice,,,,,,,"), actor="fm")
    finally:
        importer.load_state = original  # type: ignore[assignment]


_cells = st.sampled_from(
    [
        "",
        "+32470000001",
        "0470000002",
        "112",
        "alice",
        "office",
        "yes",
        "no",
        "maybe",
        "auto",
        "manual",
        "private",
        "professional",
        "mon 08:00-09:00",
        "x" * 5,
        ";",
        ",",
        '"',
        "\n",
    ]
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.lists(st.one_of(_cells, st.text(max_size=12)), max_size=11), max_size=8))
def test_fuzz_plan_only_raises_import_errors(rows: list[list[str]]) -> None:
    existing = ExistingNumber(
        id=1,
        user="alice",
        mode="professional",
        managed=False,
        status="manual",
        beep=False,
        notify=True,
        self_service=False,
        active=False,
        template=None,
        own_slots=(),
    )
    state = CurrentState(
        numbers={"+32470000001": existing}, templates={"office": (1, 1)}, users={"alice": 1}
    )
    table = [HEADER.split(","), *rows]
    try:
        plan_import(table, state)
    except CsvImportError as exc:
        assert exc.problems and all(p.row >= 1 for p in exc.problems)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_reader_only_raises_import_errors(data: bytes) -> None:
    try:
        rows = read_table(HEADER.encode() + b"\n" + data)
    except CsvImportError:
        return
    try:
        plan_import(rows, CurrentState())
    except CsvImportError:
        pass
