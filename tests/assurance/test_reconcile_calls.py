"""Reconciliation end to end: 1,000 operator CDRs against a real recorder that took real calls.

The recorder (``python -m siprec_recorder serve``) receives real SIPREC sessions from the
project's own SRC (:func:`siprec_recorder.replay.src.replay_call`) with one second of G.711
per leg: 977 recorded, 5 with CDRs claiming 30 s (short), 5 from numbers in private mode at
the time (declined by policy, the numbers switched back to professional afterwards), 3 with no
media at all (failed). 10 CDR rows have no call behind them (never offered). The report must
name exactly those 23, with their category, from the generic layout and from the CUCM preset.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siprec_recorder.replay.calls import CapturedCall, Leg, RtpRecord
from siprec_recorder.replay.src import SrcOptions, replay_call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRADERS = [f"+3247110000{i}" for i in range(3)]
PRIVATE = [f"+3247120000{i}" for i in range(5)]
CONCURRENCY = 40
ALWAYS = "mon-sun 00:00-24:00"


def one_second_call(caller: str, callee: str) -> CapturedCall:
    """Both legs: 50 packets of 20 ms PCMA (a tone on leg 1, a different one on leg 2)."""
    legs = []
    for n, role in enumerate(("caller", "callee")):
        t = np.arange(8000) / 8000
        pcm = (np.sin(2 * np.pi * (440 + 220 * n) * t) * 8000).astype(np.int16)
        payload = _alaw(pcm)
        packets = tuple(
            RtpRecord(
                time=i * 0.02,
                payload_type=8,
                marker=i == 0,
                sequence_number=1000 + i,
                timestamp=160 * i,
                ssrc=0x1000 + n,
                payload=payload[160 * i : 160 * (i + 1)],
            )
            for i in range(50)
        )
        aor = caller if role == "caller" else callee
        legs.append(Leg(role, f"tel:{aor}", None, None, packets, {8: "PCMA/8000"}))
    return CapturedCall(None, f"tel:{caller}", f"tel:{callee}", tuple(legs), 0.0, 1.0)


def _alaw(pcm: np.ndarray) -> bytes:
    from tests.compliance.srcdriver import lin2alaw

    return lin2alaw(pcm)


async def place_calls(target: tuple[str, int], plan: list[dict[str, Any]]) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(item: dict[str, Any]) -> None:
        async with sem:
            call = one_second_call(item["caller"], item["callee"])
            options = SrcOptions(
                to=target,
                caller_aor=f"tel:{item['caller']}",
                callee_aor=f"tel:{item['callee']}",
                # no media at all: the window starts after the last packet
                skip_seconds=100.0 if item["kind"] == "failed" else 0.0,
            )
            item["start"] = datetime.now(UTC)
            result = await replay_call(call, options)
            item["end"] = datetime.now(UTC)
            item["status"] = result.status

    await asyncio.gather(*(one(item) for item in plan))


def wait_finished(db: Path, expected: int, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            total, live = conn.execute(
                "SELECT count(*), sum(state = 'recording') FROM recordings"
            ).fetchone()
        if total >= expected and not live:
            return
        time.sleep(1.0)
    raise AssertionError(f"{total} rows, {live} still recording")


def write_generic(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "caller", "callee"])
        for r in rows:
            w.writerow(
                [
                    r["cdr_start"].isoformat().replace("+00:00", "Z"),
                    r["cdr_end"].isoformat().replace("+00:00", "Z"),
                    r["caller"],
                    r["callee"],
                ]
            )


def write_cucm(path: Path, rows: list[dict[str, Any]]) -> None:
    """The same calls as a Cisco CUCM flat file: other names, epoch times, a type row,
    national numbers, columns in another order and more of them."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "cdrRecordType",
                "globalCallID_callId",
                "dateTimeOrigination",
                "callingPartyNumber",
                "originalCalledPartyNumber",
                "finalCalledPartyNumber",
                "dateTimeConnect",
                "dateTimeDisconnect",
                "duration",
            ]
        )
        w.writerow(["INTEGER", "INTEGER", "INTEGER", "VARCHAR(50)", "VARCHAR(50)",
                    "VARCHAR(50)", "INTEGER", "INTEGER", "INTEGER"])  # fmt: skip
        for n, r in enumerate(rows):
            start = int(r["cdr_start"].timestamp())
            end = int(r["cdr_end"].timestamp())
            w.writerow(
                [
                    1,
                    100000 + n,
                    start,
                    "0" + r["caller"][3:],  # national form: 0470...
                    r["callee"],
                    r["callee"],
                    start,
                    end,
                    end - start,
                ]
            )


def test_thousand_cdrs_name_exactly_the_23_exceptions(
    recorder_factory: Any, tmp_path: Path
) -> None:
    rec = recorder_factory(
        recording={"channels": "mono", "workers": 1},
        reconcile={"tolerance_s": 5.0, "match_window_s": 10.0},
        alerts={"check_interval": 3600.0},
    )
    numbers = tmp_path / "numbers.csv"
    with numbers.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "user", "template", "managed", "status", "mode", "beep",
                    "notify", "self_service", "slots"])  # fmt: skip
        for i, n in enumerate(TRADERS):
            w.writerow(
                [n, f"trader{i}", "", "yes", "manual", "professional", "no", "no", "no", ALWAYS]
            )
        for i, n in enumerate(PRIVATE):
            w.writerow([n, f"private{i}", "", "yes", "manual", "private", "no", "no", "no", ALWAYS])
    rec.cli("numbers", "import", str(numbers))

    rng = random.Random(20)
    kinds = ["recorded"] * 977 + ["short"] * 5 + ["failed"] * 3 + ["declined"] * 5
    rng.shuffle(kinds)
    plan: list[dict[str, Any]] = []
    for n, kind in enumerate(kinds):
        caller = (
            PRIVATE[len([p for p in plan if p["kind"] == "declined"])]
            if (kind == "declined")
            else TRADERS[n % len(TRADERS)]
        )
        plan.append({"kind": kind, "caller": caller, "callee": f"+32220{n:05d}"})
    asyncio.run(place_calls(rec.listeners["udp"], plan))
    statuses = {p["kind"]: set() for p in plan}
    for p in plan:
        statuses[p["kind"]].add(p["status"])
    assert statuses == {"recorded": {200}, "short": {200}, "failed": {200}, "declined": {403}}
    wait_finished(rec.recordings / "index.sqlite3", len(plan))
    for n in PRIVATE:  # compliance has the numbers back in professional mode
        rec.cli("numbers", "mode", n, "professional")

    first = min(p["start"] for p in plan)
    last = max(p["end"] for p in plan)
    rows = []
    for p in plan:
        length = 30.0 if p["kind"] == "short" else (p["end"] - p["start"]).total_seconds()
        rows.append(
            {
                **p,
                "cdr_start": p["start"],
                "cdr_end": p["start"] + timedelta(seconds=length),
            }
        )
    span = (last - first).total_seconds()
    for n in range(10):  # calls the SBC never forked to us
        at = first + timedelta(seconds=span * (n + 0.5) / 10)
        rows.append(
            {
                "kind": "never_offered",
                "caller": TRADERS[n % len(TRADERS)],
                "callee": f"+32229{n:05d}",
                "cdr_start": at,
                "cdr_end": at + timedelta(seconds=42),
            }
        )
    rows.sort(key=lambda r: r["cdr_start"])
    assert len(rows) == 1000
    expected = {r["callee"]: r["kind"] for r in rows if r["kind"] != "recorded"}
    assert len(expected) == 23

    generic = tmp_path / "operator-generic.csv"
    write_generic(generic, rows)
    out_csv = tmp_path / "exceptions.csv"
    res = rec.cli("reconcile", str(generic), "--json", "--csv", str(out_csv), check=False)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"summary", "exceptions"}
    got = {e["cdr"]["callee"]: e["category"] for e in doc["exceptions"]}
    assert got == expected
    summary = doc["summary"]
    assert (summary["rows"], summary["bad_rows"], summary["required"]) == (1000, 0, 1000)
    assert (summary["recorded"], summary["never_offered"], summary["short"]) == (977, 10, 5)
    assert (summary["declined"], summary["failed"], summary["exceptions"]) == (5, 3, 23)
    for e in doc["exceptions"]:
        if e["category"] == "never_offered":
            assert e["recording_id"] is None
        else:
            assert e["recording_id"]
        if e["category"] == "declined":
            assert e["reason"] == "private-mode"
        if e["category"] == "failed":
            assert e["reason"] == "no media received"
    with out_csv.open() as f:
        lines = list(csv.DictReader(f))
    assert {r["callee"]: r["category"] for r in lines} == expected

    cucm = tmp_path / "operator-cucm.csv"
    write_cucm(cucm, rows)
    res = rec.cli("reconcile", str(cucm), "--json", check=False)
    assert res.returncode == 1, res.stderr
    doc2 = json.loads(res.stdout)
    assert doc2["summary"]["layout"] == "cucm"
    assert {e["cdr"]["callee"]: e["category"] for e in doc2["exceptions"]} == expected
    by_callee = {e["cdr"]["callee"]: e["recording_id"] for e in doc["exceptions"]}
    assert {e["cdr"]["callee"]: e["recording_id"] for e in doc2["exceptions"]} == by_callee

    # each run is an audit event
    with sqlite3.connect(rec.recordings / "index.sqlite3") as conn:
        runs = conn.execute(
            "SELECT count(*) FROM ledger WHERE action = 'reconcile.run'"
        ).fetchone()[0]
    assert runs == 2
