"""Reconciliation against a real index: each category, what policy does not require, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from siprec_recorder.assurance.cdr import read_cdr_file
from siprec_recorder.assurance.reconcile import ReconcileOptions, reconcile_calls
from siprec_recorder.policy.engine import PolicyEngine
from tests.compliance.conftest import Store

# A Monday, 09:00 UTC (10:00 in Brussels)
T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TRADER = "+32470000001"
NIGHT = "+32470000002"  # recorded only on Sunday nights


def z(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def cdr_line(start: datetime, seconds: float, caller: str, callee: str) -> str:
    return f"{z(start)},{z(start + timedelta(seconds=seconds))},{caller},{callee}\n"


async def fill(store: Store, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    m = timedelta(minutes=1)
    ids = {
        "ok": await store.add(T, other="+3222000001", seconds=60),
        "short": await store.add(T + m, other="+3222000002", seconds=10),
        "interrupted": await store.add(
            T + 2 * m, other="+3222000003", seconds=20, state="interrupted", reason="crash"
        ),
        "failed": await store.add(T + 3 * m, other="+3222000004", state="failed"),
        "declined": await store.add(
            T + 4 * m, other="+3222000005", state="declined", reason="disk-full"
        ),
        # the same pair twice, a minute apart: each CDR gets its own
        "twice-1": await store.add(T + 5 * m, other="+3222000006", seconds=30),
        "twice-2": await store.add(T + 6 * m, other="+3222000006", seconds=30),
    }
    rc = store.cli("numbers", "add", TRADER, "--user", "trader", "--status", "manual")
    assert rc.returncode == 0, rc.stderr
    rc = store.cli("numbers", "add", NIGHT, "--user", "night", "--slot", "sun 22:00-23:00")
    assert rc.returncode == 0, rc.stderr
    text = "start,end,caller,callee\n"
    text += cdr_line(T + timedelta(seconds=1), 61, TRADER, "+3222000001")  # recorded
    text += cdr_line(T + m, 60, TRADER, "022000002")  # short: 10 s of 60
    text += cdr_line(T + 2 * m, 22, TRADER, "+3222000003")  # interrupted, length ok
    text += cdr_line(T + 3 * m, 30, TRADER, "+3222000004")  # failed
    text += cdr_line(T + 4 * m, 30, "+3222000005", TRADER)  # declined (other direction)
    text += cdr_line(T + 5 * m, 30, TRADER, "+3222000006")
    text += cdr_line(T + 6 * m, 30, TRADER, "+3222000006")
    text += cdr_line(T + 7 * m, 30, TRADER, "+3222000007")  # never offered
    text += cdr_line(T + 8 * m, 30, TRADER, "112")  # emergency: never recorded
    text += cdr_line(T + 9 * m, 30, NIGHT, "+3222000008")  # outside its schedule
    text += cdr_line(T + 10 * m, 30, "not-a-number", "+3222000009")  # a bad row
    path = tmp_path / "cdr.csv"
    path.write_text(text, encoding="utf-8")
    return path, ids


async def test_every_category(store: Store, tmp_path: Path) -> None:
    path, ids = await fill(store, tmp_path)
    engine = PolicyEngine(store.db)
    try:
        report = await reconcile_calls(
            store.db, engine, read_cdr_file(path), ReconcileOptions(tolerance_s=5)
        )
    finally:
        await engine.close()
    got = [
        (r.call.line, r.category, r.session.rec_id if r.session else None) for r in report.results
    ]
    assert got == [
        (2, "recorded", ids["ok"]),
        (3, "short", ids["short"]),
        (4, "recorded", ids["interrupted"]),
        (5, "failed", ids["failed"]),
        (6, "declined", ids["declined"]),
        (7, "recorded", ids["twice-1"]),
        (8, "recorded", ids["twice-2"]),
        (9, "never_offered", None),
    ]
    assert report.not_required == {"emergency-number": 1, "outside-schedule": 1}
    assert [str(e) for e in report.row_errors] == ["line 12: caller: not a number: 'not-a-number'"]
    by_line = {r.call.line: r for r in report.results}
    assert by_line[3].reason == "recording 10.0 s of a 60.0 s call (50.0 s missing)"
    assert by_line[5].reason == "no media"
    assert by_line[6].reason == "disk-full"
    s = report.summary()
    assert (s["rows"], s["bad_rows"], s["calls"], s["required"], s["not_required"]) == (
        11,
        1,
        10,
        8,
        2,
    )
    assert (s["recorded"], s["short"], s["failed"], s["declined"], s["never_offered"]) == (
        4,
        1,
        1,
        1,
        1,
    )
    table = report.to_table()
    assert "recorded 4, short 1, declined 1, failed 1, never offered 1" in table
    assert "not required, emergency-number: 1" in table
    assert "bad row, line 12: caller: not a number" in table
    csv_lines = report.exceptions_csv().splitlines()
    assert csv_lines[0].startswith("category,line,start")
    assert [line.split(",")[0] for line in csv_lines[1:]] == [
        "short",
        "failed",
        "declined",
        "never_offered",
    ]


async def test_a_wider_tolerance_accepts_the_short_one(store: Store, tmp_path: Path) -> None:
    path, ids = await fill(store, tmp_path)
    engine = PolicyEngine(store.db)
    try:
        report = await reconcile_calls(
            store.db, engine, read_cdr_file(path), ReconcileOptions(tolerance_s=60)
        )
    finally:
        await engine.close()
    assert {r.call.line: r.category for r in report.results}[3] == "recorded"


async def test_cli_json_csv_audit_and_exit_codes(store: Store, tmp_path: Path) -> None:
    path, _ids = await fill(store, tmp_path)
    out = tmp_path / "exceptions.csv"
    res = store.cli("reconcile", str(path), "--json", "--csv", str(out))
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert set(doc) == {"summary", "exceptions"}
    assert [(e["category"], e["cdr"]["line"]) for e in doc["exceptions"]] == [
        ("short", 3),
        ("failed", 5),
        ("declined", 6),
        ("never_offered", 9),
    ]
    assert set(doc["exceptions"][0]) >= {"category", "cdr", "recording_id"}
    assert doc["exceptions"][0]["cdr"]["start"] == z(T + timedelta(minutes=1))
    assert "cdr.csv: bad row, line 12: caller: not a number" in res.stderr
    assert len(out.read_text().splitlines()) == 5
    from sqlalchemy import select

    from siprec_recorder.storage.models import LedgerEntry

    async with store.db.session() as session:
        events = (
            (
                await session.execute(
                    select(LedgerEntry).where(LedgerEntry.action == "reconcile.run")
                )
            )
            .scalars()
            .all()
        )
    assert len(events) == 1
    details = json.loads(events[0].details)
    assert (details["never_offered"], details["short"], details["bad_rows"]) == (1, 1, 1)

    # a clean file: exit 0
    clean = tmp_path / "clean.csv"
    clean.write_text("start,end,caller,callee\n" + cdr_line(T, 60, TRADER, "+3222000001"))
    res = store.cli("reconcile", str(clean))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "recorded 1, short 0, declined 0, failed 0, never offered 0" in res.stdout


async def test_cli_refuses_an_unknown_layout_in_one_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("Datum,Van,Naar\n2026-11-02,1,2\n", encoding="utf-8")
    res = store.cli("reconcile", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "found columns Datum, Van, Naar" in lines[0]
    assert "expected start, end, caller, callee (generic)" in lines[0]
    res = store.cli("reconcile", str(tmp_path / "missing.csv"))
    assert res.returncode == 2 and "no such file" in res.stderr
    res = store.cli("reconcile", str(path), "--format", "cucm")
    assert res.returncode == 2 and "dateTimeOrigination" in res.stderr
