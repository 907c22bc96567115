"""A declined call is visible to the operator: the recorder logs it at INFO with its reason,
and ``replay`` prints the reason the recorder gave (its Warning header), not just 403."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from .conftest import PCAPS, ROOT

pytestmark = [pytest.mark.integration]


def test_declined_call_is_logged_and_replay_prints_why(recorder_factory: Any) -> None:
    rec = recorder_factory(policy={"unknown_numbers": "decline"})
    host, port = rec.listeners["udp"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC_")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "siprec_recorder",
            "replay",
            str(PCAPS / "SIP_CALL_RTP_G711.pcap"),
            "--to",
            f"{host}:{port}",
            "--caller",
            "tel:+32499999999",
            "--max-seconds",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # replay prints the recorder's Warning text; on the wire every policy refusal reads the
    # same ("not recorded", so a scanner learns nothing), the reason is in the recorder's log.
    assert "INVITE answered 403 Forbidden (not recorded)" in res.stderr
    deadline = time.monotonic() + 10
    while "not recorded (403): unknown-number" not in rec.log():
        assert time.monotonic() < deadline, rec.log()[-2000:]
        time.sleep(0.2)
    line = next(x for x in rec.log().splitlines() if "not recorded (403)" in x)
    assert " INFO " in line and "from 127.0.0.1" in line
