"""DTMF (RFC 4733 telephone-events) through a real recorder: digits, times and the sending leg
in the index row, ``search --json`` and the sidecar, and no tones in the audio.

The expected digits are read from the capture independently of the recorder: telephone-event
packets grouped by RTP timestamp (one event), event code -> digit, time of the first packet
of the event relative to the call's first RTP packet.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siprec_recorder.replay.api import load_call, replay_capture

from .audio import decode_mp3, envelope, place_on_timeline
from .conftest import PCAPS

pytestmark = [pytest.mark.integration]

DIGITS = "0123456789*#ABCD"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def expected_digits(
    pcap: Path, skip: float, seconds: float
) -> tuple[list[tuple[str, str, float, int]], float, dict[str, list[tuple[float, bytes]]]]:
    """(role, digit, seconds from the replayed window's start, duration ms), window start,
    audio per role."""
    call = load_call(pcap)
    t0 = min(leg.packets[0].time for leg in call.legs if leg.packets) + skip
    digits = []
    durations: dict[tuple[str, int], int] = {}  # (role, RTP timestamp) -> longest duration
    audio: dict[str, list[tuple[float, bytes]]] = {}
    for leg in call.legs:
        events = {
            pt for pt, name in leg.rtpmap.items() if name.lower().startswith("telephone-event")
        }
        seen: set[int] = set()
        for p in leg.packets:
            if not t0 <= p.time < t0 + seconds:
                continue
            if p.payload_type in events:
                # RFC 4733 section 2.3: event, E|R|volume, duration (in timestamp units).
                duration = int.from_bytes(p.payload[2:4], "big")
                key = (leg.role, p.timestamp)
                durations[key] = max(durations.get(key, 0), duration)
                if p.timestamp not in seen:
                    seen.add(p.timestamp)
                    digits.append((leg.role, DIGITS[p.payload[0]], p.time - t0, p.timestamp))
            elif p.payload_type in (0, 8):
                audio.setdefault(leg.role, []).append((p.time - t0, p.payload))
    with_durations = [
        (role, digit, at, durations[(role, ts)] * 1000 // 8000) for role, digit, at, ts in digits
    ]
    return sorted(with_durations, key=lambda d: d[2]), t0, audio


@pytest.mark.parametrize(
    ("name", "skip", "seconds", "encoding"),
    [
        ("miarec_09a_2833_dtmf.pcap", 15.0, 12.0, "PCMU"),  # PCMU + PT 101, one-way
        ("sipnab_SIP_DTMF2.cap", 0.0, 10.0, "PCMA"),  # late offer via a proxy, PT 96
    ],
)
def test_digits_reach_index_search_and_sidecar(
    recorder_factory: Any, name: str, skip: float, seconds: float, encoding: str
) -> None:
    pcap = PCAPS / name
    want, _t0, audio = expected_digits(pcap, skip, seconds)
    assert len(want) >= 5, want
    rec = recorder_factory()
    result = asyncio.run(
        replay_capture(pcap, rec.listeners["udp"], skip_seconds=skip, max_seconds=seconds)
    )
    assert result.ok, result
    row = rec.wait_for_recordings(1)[0]
    label_role = result.labels  # label -> role
    first_at = min(_epoch(s["first_packet_at"]) for s in row["streams"] if s["first_packet_at"])
    start = _epoch(row["start"])
    media_offset = first_at - start  # the window's first packet, on the recording's clock

    def check(dtmf: list[dict[str, Any]]) -> None:
        got = [
            (label_role[d["label"]], d["digit"], d["at_s"] - media_offset, d["duration_ms"])
            for d in dtmf
        ]
        assert [(r, d) for r, d, _, _ in got] == [(r, d) for r, d, _, _ in want], (got, want)
        for (_r, _d, at, ms), (_r2, _d2, at_want, ms_want) in zip(got, want, strict=True):
            assert abs(at - at_want) < 0.1, (got, want)
            assert abs(ms - ms_want) <= 20, (got, want)

    check(row["dtmf"])
    found = json.loads(rec.cli("search", "--json").stdout)
    (hit,) = [r for r in found if r["id"] == row["id"]]
    check(hit["dtmf"])
    mp3 = rec.recordings / row["file"]
    assert rec.recordings / row["sidecar"] == mp3.with_suffix(".json")  # beside the MP3
    sidecar = json.loads(mp3.with_suffix(".json").read_text())
    assert sidecar["id"] == row["id"]
    check(sidecar["dtmf"])

    # The tones are not in the audio: where the events are, the recording is as loud as the
    # audio packets alone make it (the SRC's own in-band audio), never louder.
    got, rate = decode_mp3(mp3)
    reference = np.zeros(0, np.float32)
    for packets in audio.values():
        leg = place_on_timeline(packets, encoding)
        if len(leg) > len(reference):
            leg[: len(reference)] += reference
            reference = leg
        else:
            reference[: len(leg)] += leg
    env_got = envelope(got[:, 0], rate)
    env_ref = envelope(reference, 8000)
    shift = int(round(media_offset / 0.02))
    for _role, _digit, at, _ms in want:
        k = int(at / 0.02)
        window_got = env_got[shift + k : shift + k + 5]
        window_ref = env_ref[max(0, k - 3) : k + 8]
        assert window_got.max(initial=0) <= max(window_ref.max(initial=0) * 1.5, 0.02), at
