"""Schedules on daylight-saving change days, enforced by the real recorder.

The recorder process runs under libfaketime (Debian ``faketime``), started at a chosen UTC
instant on the 2026 change days of Europe/Brussels, so its ``now`` is really that day while
everything else (sockets, index, policy engine) is the shipped code. A slot is local wall
time: on 29 March 2026 clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC); on 25 October
they fall back from 03:00 CEST to 02:00 CET (01:00 UTC).
"""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from siprec_recorder.testing import RecorderProcess, write_config

from .test_policy_calls import invite
from .test_signalling import header, status

pytestmark = [pytest.mark.integration]

NUMBER = "+32470000009"


def faketime_library() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is not installed (Debian package faketime; scripts/run-tests)")
    return found[0]


@pytest.mark.parametrize(
    ("utc", "slot", "expected", "why"),
    [
        # Spring: 01:30 UTC is 03:30 CEST (a fixed +1 h would say 02:30, outside).
        ("2026-03-29 01:30:00", "sun 03:00-04:00", 200, "03:30 CEST is inside"),
        ("2026-03-29 00:30:00", "sun 03:00-04:00", 403, "01:30 CET is outside"),
        # Autumn: 01:30 UTC is 02:30 CET (a fixed +2 h would say 03:30, inside).
        ("2026-10-25 01:30:00", "sun 03:00-04:00", 403, "02:30 CET is outside"),
        ("2026-10-25 02:30:00", "sun 03:00-04:00", 200, "03:30 CET is inside"),
        # The repeated hour: both passes through 02:00-03:00 are inside a 02:00-03:00 slot.
        ("2026-10-25 00:30:00", "sun 02:00-03:00", 200, "02:30 CEST, first pass"),
        ("2026-10-25 01:30:00", "sun 02:00-03:00", 200, "02:30 CET, second pass"),
    ],
)
def test_dst_change_days(tmp_path: Path, utc: str, slot: str, expected: int, why: str) -> None:
    cfg = write_config(tmp_path)
    rec = RecorderProcess(
        workdir=tmp_path,
        config_path=cfg,
        recordings=tmp_path / "recordings",
        env={"LD_PRELOAD": faketime_library(), "FAKETIME": f"@{utc}"},
    )
    rec.cli(
        "numbers",
        "add",
        NUMBER,
        "--user",
        "dst",
        "--managed",
        "yes",
        "--status",
        "auto",
        "--slot",
        slot,
    )
    rec.start()
    try:
        resp = invite(rec, f"tel:{NUMBER}")
        assert status(resp) == expected, (why, header(resp, "Warning"))
        if expected == 403:
            assert header(resp, "Warning") == '399 - "not recorded"'
            rows = rec.search("--number", NUMBER)
            assert rows and rows[0]["start"].startswith(utc[:10]), rows
    finally:
        rec.stop()
