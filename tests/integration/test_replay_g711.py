"""The replay tool as the SRC: real captured calls, recorded, decoded back, compared.

Each test replays a corpus capture at its original pace against a real recorder process,
then decodes the MP3 and compares it with an independent (FFmpeg) decode of the payloads the
capture holds, placed at their captured times: the envelope must correlate (>= 0.9), the
duration must match (2 %), and in stereo each leg must be on its own channel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siprec_recorder.replay.api import load_call, replay_capture, replay_many

from .audio import decode_mp3, envelope_match, mix, place_on_timeline
from .conftest import PCAPS

pytestmark = [pytest.mark.integration]


def expected_legs(pcap: Path, call_index: int = 0) -> tuple[dict[str, np.ndarray], float]:
    """Per role, the captured audio laid on the call's timeline (from its first RTP packet)."""
    call = load_call(pcap, call_index)
    t0 = min(leg.packets[0].time for leg in call.legs if leg.packets)
    out: dict[str, np.ndarray] = {}
    for leg in call.legs:
        pts = {p.payload_type for p in leg.packets}
        enc = next(
            leg.rtpmap.get(pt, {0: "PCMU", 8: "PCMA"}.get(pt, "")).split("/")[0].upper()
            for pt in pts
            if leg.rtpmap.get(pt, {0: "PCMU", 8: "PCMA"}.get(pt, "")).split("/")[0].upper()
            in ("PCMA", "PCMU")
        )
        out[leg.role] = place_on_timeline(
            [(p.time - t0, p.payload) for p in leg.packets if p.payload_type in (0, 8)], enc
        )
    return out, t0


def check_common(rec: Any, row: dict[str, Any], result: Any) -> Path:
    assert row["state"] == "complete", row
    assert row["call_id"] == result.call_id
    mp3 = rec.recordings / row["file"]
    assert mp3.exists() and not list(rec.recordings.rglob("*.part"))
    assert hashlib.sha256(mp3.read_bytes()).hexdigest() == row["sha256"]
    sidecar = json.loads(mp3.with_suffix(".json").read_text())
    assert sidecar["id"] == row["id"] and sidecar["sha256"] == row["sha256"]
    streams = {s["label"]: s for s in row["streams"]}
    start = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(row["end"].replace("Z", "+00:00"))
    for label, sent in result.packets_sent.items():
        assert streams[label]["packets_received"] == sent, (label, streams[label], sent)
        assert streams[label]["packets_lost"] == 0
        if sent:  # when the leg's media came, as wall-clock times inside the call
            first = datetime.fromisoformat(streams[label]["first_packet_at"].replace("Z", "+00:00"))
            last = datetime.fromisoformat(streams[label]["last_packet_at"].replace("Z", "+00:00"))
            assert start <= first < last <= end + timedelta(seconds=1), (start, first, last, end)
    return mp3


@pytest.mark.parametrize("channels", ["mono", "stereo"])
def test_sip_call_rtp_g711_both_legs(recorder_factory: Any, channels: str) -> None:
    pcap = PCAPS / "SIP_CALL_RTP_G711.pcap"
    rec = recorder_factory(recording={"channels": channels})
    result = asyncio.run(replay_capture(pcap, rec.listeners["udp"], speed=1.0))
    assert result.ok, result
    rows = rec.wait_for_recordings(1)
    row = rows[0]
    mp3 = check_common(rec, row, result)
    call = load_call(pcap)
    assert {p["aor"] for p in row["participants"]} == {call.caller, call.callee}

    legs, _t0 = expected_legs(pcap)
    got, rate = decode_mp3(mp3)
    role_of = result.labels  # label -> role
    if channels == "mono":
        assert got.shape[1] == 1
        expected = mix(list(legs.values()))
        corr, lag = envelope_match(got[:, 0], rate, expected, 8000)
        assert corr >= 0.9, (corr, lag)
    else:
        assert got.shape[1] == 2
        labels = sorted(role_of)  # m-line order: the first label is the left channel
        for ch, label in enumerate(labels):
            corr, lag = envelope_match(got[:, ch], rate, legs[role_of[label]], 8000)
            assert corr >= 0.9, (label, corr, lag)
            assert abs(lag) < 0.3, (label, lag)
        # Each channel holds its own leg, not the other one: the legs differ, so the
        # cross-match must be clearly worse.
        cross, _ = envelope_match(got[:, 0], rate, legs[role_of[labels[1]]], 8000)
        own, _ = envelope_match(got[:, 0], rate, legs[role_of[labels[0]]], 8000)
        assert own - cross > 0.2, (own, cross)
    sent_s = max(len(x) for x in legs.values()) / 8000
    assert abs(row["duration_s"] - sent_s) / sent_s < 0.02, (row["duration_s"], sent_s)
    assert abs(len(got) / rate - sent_s) / sent_s < 0.02


@pytest.mark.parametrize("call_index", [0, 1])
def test_sip_rtp_g711_pcmu_and_pcma_calls(recorder_factory: Any, call_index: int) -> None:
    pcap = PCAPS / "sip-rtp-g711.pcap"
    rec = recorder_factory()
    result = asyncio.run(
        replay_capture(pcap, rec.listeners["tcp"], transport="tcp", call_index=call_index)
    )
    assert result.ok, result
    row = rec.wait_for_recordings(1)[0]
    mp3 = check_common(rec, row, result)
    legs, _ = expected_legs(pcap, call_index)
    codec = {s["codec"].upper() for s in row["streams"] if s["packets_received"]}
    assert codec == ({"PCMU"} if call_index == 0 else {"PCMA"})
    got, rate = decode_mp3(mp3)
    corr, lag = envelope_match(got[:, 0], rate, mix(list(legs.values())), 8000)
    assert corr >= 0.9, (corr, lag)
    sent_s = max(len(x) for x in legs.values()) / 8000
    assert abs(row["duration_s"] - sent_s) / sent_s < 0.02, (row["duration_s"], sent_s)


@pytest.mark.serial
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_fifty_concurrent_calls(recorder_factory: Any, transport: str) -> None:
    pcap = PCAPS / "pkts_sip_rtp.pcap"
    rec = recorder_factory()
    results = asyncio.run(replay_many(pcap, rec.listeners[transport], 50, transport=transport))
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    rows = rec.wait_for_recordings(50, timeout=120)
    assert len(rows) == 50
    assert {r["call_id"] for r in rows} == {r.call_id for r in results}
    by_id = {r.call_id: r for r in results}
    for row in rows:
        assert row["state"] == "complete"
        received = sum(s["packets_received"] for s in row["streams"])
        lost = sum(s["packets_lost"] for s in row["streams"])
        assert received == 501 and lost == 0, row["streams"]
        # The recording runs on the wall clock from our answer to the SRC's BYE: the 10 s of
        # media, never compressed, and never longer than the sender's own span from the 200 OK
        # to its BYE plus the 200 OK's trip (both grow with 50 calls on a loaded machine;
        # the sender's event loop is as loaded as ours) and the BYE's trip to us.
        result = by_id[row["call_id"]]
        assert result.answered_at is not None and result.bye_sent_at is not None
        span = result.bye_sent_at - result.answered_at
        lead = result.setup_s or 0.0
        assert 10.0 - 0.2 < row["duration_s"] < span + lead + 0.2, (
            row["duration_s"],
            span,
            lead,
        )
