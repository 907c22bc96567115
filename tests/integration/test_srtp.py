"""SRTP through a real recorder: a captured SRTP call with its known SDES key, and a wrong key.

The capture (``pcaps/gteissier_marseillaise-srtp.pcap``, key in ``pcaps/SOURCES.md``) is
replayed as captured, still encrypted, by the replay tool offering that key. The reference is
an independent decryption of the same packets with pylibsrtp and an A-law decode laid on the
capture's timeline. A wrong key must give a stream marked ``auth_failed`` that counts every
packet, and no audio made of garbage.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pylibsrtp
import pytest

from siprec_recorder.replay.api import load_call, replay_capture

from .audio import decode_mp3, envelope_match, place_on_timeline
from .conftest import PCAPS

pytestmark = [pytest.mark.integration]

PCAP = PCAPS / "gteissier_marseillaise-srtp.pcap"
KEY_B64 = "aSBrbm93IGFsbCB5b3VyIGxpdHRsZSBzZWNyZXRz"
SKIP_S = 30.0  # the capture opens with silence; take a stretch of music
SECONDS = 8.0


def _reference() -> np.ndarray:
    call = load_call(PCAP)
    (leg,) = [leg for leg in call.legs if leg.packets]
    first = leg.packets[0].time + SKIP_S
    policy = pylibsrtp.Policy(
        key=base64.b64decode(KEY_B64),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    session = pylibsrtp.Session(policy=policy)
    placed = []
    for p in leg.packets:
        wire = (
            bytes([0x80, (0x80 if p.marker else 0) | p.payload_type])
            + p.sequence_number.to_bytes(2, "big")
            + p.timestamp.to_bytes(4, "big")
            + p.ssrc.to_bytes(4, "big")
            + p.payload
        )
        plain = session.unprotect(wire)  # every packet, in order (rollover counter)
        if first <= p.time < first + SECONDS:
            placed.append((p.time - first, plain[12:]))
    return place_on_timeline(placed, "PCMA")


def _replay(rec: Any, key_b64: str) -> Any:
    result = asyncio.run(
        replay_capture(
            PCAP,
            rec.listeners["udp"],
            srtp_key=f"AES_CM_128_HMAC_SHA1_80 inline:{key_b64}",
            skip_seconds=SKIP_S,
            max_seconds=SECONDS,
        )
    )
    assert result.ok, result
    return result


def test_captured_srtp_call_decrypts_to_the_right_audio(recorder_factory: Any) -> None:
    rec = recorder_factory()
    result = _replay(rec, KEY_B64)
    row = rec.wait_for_recordings(1)[0]
    assert row["state"] == "complete" and row["srtp"], row
    (stream,) = [s for s in row["streams"] if s["packets_received"]]
    sent = sum(result.packets_sent.values())
    assert stream["packets_received"] == sent and stream["packets_lost"] == 0
    assert stream["srtp_auth_failures"] == 0 and stream["status"] == "ok"
    # The answer carries the recorder's own key, not an echo of the offered one.
    assert "a=crypto:" in result.answer_sdp and KEY_B64 not in result.answer_sdp
    got, rate = decode_mp3(rec.recordings / row["file"])
    expected = _reference()
    corr, lag = envelope_match(got[:, 0], rate, expected, 8000)
    assert corr >= 0.9, (corr, lag)
    assert abs(row["duration_s"] - len(expected) / 8000) / (len(expected) / 8000) < 0.02
    assert KEY_B64 not in rec.log()  # keys never logged


def test_wrong_key_is_marked_auth_failed_without_garbage_audio(recorder_factory: Any) -> None:
    rec = recorder_factory()
    wrong = base64.b64encode(bytes(range(30))).decode()
    result = _replay(rec, wrong)
    row = rec.wait_for_recordings(1)[0]
    sent = sum(result.packets_sent.values())
    (stream,) = [s for s in row["streams"] if s["srtp_auth_failures"]]
    assert stream["status"] == "auth_failed", row["streams"]
    assert stream["srtp_auth_failures"] == sent and stream["packets_received"] == 0
    sidecar = json.loads((rec.recordings / row["sidecar"]).read_text()) if row["sidecar"] else {}
    if sidecar:
        assert any(s["status"] == "auth_failed" for s in sidecar["streams"])
    if row["file"]:
        got, _rate = decode_mp3(rec.recordings / row["file"])
        assert not np.any(got), "garbage audio from packets that failed authentication"
    assert wrong not in rec.log()
