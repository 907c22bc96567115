"""SIPp as the SRC: a SIPREC INVITE with pcap audio, recorded, decoded back and compared."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .audio import decode_mp3, envelope_match, place_on_timeline
from .conftest import PCAPS, ROOT

pytestmark = [pytest.mark.integration]

SCENARIO = ROOT / "tests" / "data" / "sipp" / "siprec_uac_pcap.xml"
PCAP = PCAPS / "sipp_g711a.pcap"


def sent_payloads(pcap: Path) -> list[tuple[float, bytes]]:
    """(offset, payload) of every RTP packet in the capture, offsets from the first one."""
    from siprec_recorder.replay.capture import read_capture

    packets = [d for d in read_capture(pcap).udp if len(d.payload) > 12]
    t0 = packets[0].time
    return [(d.time - t0, bytes(d.payload[12:])) for d in packets]


def run_sipp(
    tmp_path: Path, target: tuple[str, int], transport: str, calls: int = 1, rate: int = 10
) -> subprocess.CompletedProcess[str]:
    if shutil.which("sipp") is None:
        pytest.fail(
            "sipp is not installed (Debian package sip-tester); scripts/run-tests installs it"
        )
    scenario = tmp_path / "scenario.xml"
    scenario.write_text(SCENARIO.read_text().replace("[field0]", str(PCAP)))
    shutil.copy(SCENARIO.parent / "sipp.dtd", tmp_path / "sipp.dtd")
    cmd = [
        "sipp",
        "-sf",
        str(scenario),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(calls),
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-mi",
        "127.0.0.1",
        "-mp",
        "0",
        "-t",
        "u1" if transport == "udp" else "t1",
        "-timeout",
        "60",
        "-timeout_error",
        "-trace_err",
        "-nostdin",
        f"{target[0]}:{target[1]}",
    ]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_call_is_recorded_with_its_audio(
    recorder_factory: Any, tmp_path: Path, transport: str
) -> None:
    rec = recorder_factory()
    res = run_sipp(tmp_path, rec.listeners[transport], transport)
    assert res.returncode == 0, (
        f"sipp failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}\n{rec.log()[-3000:]}"
    )

    rows = rec.wait_for_recordings(1, number="+32470000001")
    assert len(rows) == 1
    row = rows[0]
    assert row["state"] == "complete"
    numbers = sorted(p["number"] for p in row["participants"])
    assert numbers == ["+32470000001", "+32470999999"]
    aors = {p["aor"] for p in row["participants"]}
    assert "tel:+32470999999" in aors
    streams = {s["label"]: s for s in row["streams"]}
    assert set(streams) == {"1", "2"}
    assert streams["1"]["codec"].upper() == "PCMA"
    assert streams["1"]["packets_received"] == 236
    assert streams["1"]["packets_lost"] == 0
    assert streams["2"]["packets_received"] == 0

    # Found by every form of the number.
    for form in (
        "0032470000001",
        "tel:+32470000001",
        "sip:+32470000001@host;user=phone",
        "0470000001",
    ):
        assert [r["id"] for r in rec.search("--number", form)] == [row["id"]], form

    mp3 = rec.recordings / row["file"]
    assert mp3.suffix == ".mp3" and mp3.exists()
    assert not list(rec.recordings.rglob("*.part"))
    got, rate = decode_mp3(mp3)
    assert got.shape[1] == 1
    expected = place_on_timeline(sent_payloads(PCAP), "PCMA")
    corr, lag = envelope_match(got[:, 0], rate, expected, 8000)
    assert corr >= 0.9, (corr, lag)
    assert abs(lag) < 0.3
    sent_s = len(expected) / 8000
    assert abs(row["duration_s"] - sent_s) / sent_s < 0.02 + abs(lag) / sent_s, (
        row["duration_s"],
        sent_s,
    )
    assert abs(len(got) / rate - row["duration_s"]) / sent_s < 0.02

    sidecar = json.loads(mp3.with_suffix(".json").read_text())
    assert sidecar["id"] == row["id"] and sidecar["sha256"] == row["sha256"]
    assert sidecar["call_id"] == row["call_id"]
    assert {p["number"] for p in sidecar["participants"]} == {"+32470000001", "+32470999999"}
    import hashlib

    assert hashlib.sha256(mp3.read_bytes()).hexdigest() == row["sha256"]
    # The recorded number is the firm's (first participant here) and lays out the path.
    assert row["file"].startswith("32470000001/")
    assert np.isfinite(got).all()
