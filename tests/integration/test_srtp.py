"""SRTP through a real recorder: a captured SRTP call with its known SDES key, a wrong key,
and the other suites the recorder answers.

The capture (``pcaps/gteissier_marseillaise-srtp.pcap``, key in ``pcaps/SOURCES.md``) is
replayed as captured, still encrypted, by the replay tool offering that key. The reference is
an independent decryption of the same packets with pylibsrtp and an A-law decode (FFmpeg)
laid on the capture's timeline. A wrong key must give a stream marked ``auth_failed`` that
counts every packet, a call whose row says why, and no audio made of garbage: the call ended
with a BYE, so by design its MP3 runs to that BYE, and it is silence.

The recorder runs at DEBUG so that "keys never logged" covers every log line it has; the
keys must not reach any file it writes either (index, spool, sidecars).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
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
SECONDS = 15.0
# With a wrong key no packet counts as media, so the recorder ends the call after
# [rtp] inactivity_timeout (10 s in the test config); stay inside it to see every packet.
WRONG_KEY_SECONDS = 8.0


def _crypto_lines(sdp: str) -> list[tuple[str, str]]:
    """(suite, base64 key||salt) of each a=crypto line."""
    return re.findall(r"^a=crypto:\d+ (\S+) inline:([A-Za-z0-9+/=]+)", sdp, re.MULTILINE)


def _assert_keys_nowhere(rec: Any, *keys: str) -> None:
    log = rec.log()
    assert "call " in log  # the log is there to search (DEBUG: the most it ever says)
    for key in keys:
        assert key not in log, "an SRTP key in the recorder's log"
    for path in Path(rec.workdir).rglob("*"):
        if path.is_file() and not path.name.startswith("recorder-"):
            data = path.read_bytes()
            for key in keys:
                assert key.encode() not in data, f"an SRTP key in {path}"


def _reference() -> np.ndarray:
    """The window's audio: every packet decrypted in order with pylibsrtp, A-law, placed."""
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


def _replay(rec: Any, key_b64: str, seconds: float) -> Any:
    result = asyncio.run(
        replay_capture(
            PCAP,
            rec.listeners["udp"],
            srtp_key=f"AES_CM_128_HMAC_SHA1_80 inline:{key_b64}",
            skip_seconds=SKIP_S,
            max_seconds=seconds,
        )
    )
    assert result.ok, result
    return result


def test_captured_srtp_call_decrypts_to_the_right_audio(recorder_factory: Any) -> None:
    rec = recorder_factory(log={"level": "DEBUG"})
    result = _replay(rec, KEY_B64, SECONDS)
    row = rec.wait_for_recordings(1)[0]
    assert row["state"] == "complete" and row["srtp"] and row["reason"] is None, row
    (stream,) = [s for s in row["streams"] if s["packets_received"]]
    sent = sum(result.packets_sent.values())
    assert sent > 0.9 * SECONDS / 0.02, sent
    assert stream["packets_received"] == sent and stream["packets_lost"] == 0
    assert stream["srtp_auth_failures"] == 0 and stream["status"] == "ok"
    assert stream["codec"].upper() == "PCMA"
    # The answer carries the recorder's own key of the offered suite, not an echo.
    assert "RTP/SAVP" in result.answer_sdp
    ((suite, answer_key),) = _crypto_lines(result.answer_sdp)
    assert suite == "AES_CM_128_HMAC_SHA1_80"
    assert len(base64.b64decode(answer_key)) == 30 and answer_key != KEY_B64

    got, rate = decode_mp3(rec.recordings / row["file"])
    expected = _reference()
    corr, lag = envelope_match(got[:, 0], rate, expected, 8000)
    assert corr >= 0.9, (corr, lag)
    expected_s = len(expected) / 8000
    assert abs(row["duration_s"] - expected_s) / expected_s < 0.02, (row["duration_s"], expected_s)
    assert abs(len(got) / rate - expected_s) / expected_s < 0.02, (len(got) / rate, expected_s)
    _assert_keys_nowhere(rec, KEY_B64, answer_key)


def test_wrong_key_is_marked_auth_failed_without_garbage_audio(recorder_factory: Any) -> None:
    rec = recorder_factory(log={"level": "DEBUG"})
    wrong = base64.b64encode(bytes(range(30))).decode()  # valid format, not the capture's
    result = _replay(rec, wrong, WRONG_KEY_SECONDS)
    assert not result.hung_up_by_recorder  # every packet was sent: none cut off by a timeout
    sent = sum(result.packets_sent.values())
    assert sent > 0.9 * WRONG_KEY_SECONDS / 0.02, sent
    row = rec.wait_for_recordings(1)[0]
    (stream,) = row["streams"]
    assert stream["status"] == "auth_failed", row["streams"]
    assert stream["srtp_auth_failures"] == sent and stream["packets_received"] == 0
    # The call's row says what went wrong, and its sidecar too.
    note = f"SRTP authentication failed on every packet of stream {stream['label']}"
    assert row["reason"] == note, row
    sidecar = json.loads((rec.recordings / row["sidecar"]).read_text())
    assert sidecar["reason"] == note
    assert [(s["status"], s["srtp_auth_failures"]) for s in sidecar["streams"]] == [
        ("auth_failed", sent)
    ]
    # No audio to mistake for the call: nothing authenticated, nothing was decoded. The call
    # ended with a BYE, so by design its recording runs to that BYE, in silence; no raw RTP
    # is kept either (nothing was spooled).
    got, rate = decode_mp3(rec.recordings / row["file"])
    assert len(got) / rate > WRONG_KEY_SECONDS * 0.9
    assert not np.any(got), "garbage audio from packets that failed authentication"
    assert not list(rec.recordings.rglob("*.pcap"))
    assert "SRTP (AES_CM_128_HMAC_SHA1_80): packet refused" in rec.log()
    ((_suite, answer_key),) = _crypto_lines(result.answer_sdp)
    _assert_keys_nowhere(rec, wrong, answer_key)


def _plain_reference(pcap: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The window's audio (PCMU, placed) and its packet count."""
    call = load_call(pcap)
    (leg,) = [leg for leg in call.legs if leg.packets]
    first = leg.packets[0].time
    placed = [(p.time - first, p.payload) for p in leg.packets if p.time < first + seconds]
    assert {p.payload_type for p in leg.packets} == {0}
    return place_on_timeline(placed, "PCMU"), len(placed)


@pytest.mark.parametrize(("suite", "key_octets"), [
    ("AES_CM_128_HMAC_SHA1_32", 30),
    ("AEAD_AES_128_GCM", 28),
])  # fmt: skip
def test_other_suites_end_to_end(recorder_factory: Any, suite: str, key_octets: int) -> None:
    """The replay tool protects a plain capture with a random key of ``suite``; the recorder
    answers in that suite with its own key and records the right audio."""
    pcap = PCAPS / "pkts_sip_rtp.pcap"  # PCMU one way, 10 s
    seconds = 6.0
    rec = recorder_factory(log={"level": "DEBUG"})
    result = asyncio.run(
        replay_capture(pcap, rec.listeners["udp"], srtp=True, srtp_suite=suite, max_seconds=seconds)
    )
    assert result.ok, result
    ((answered, answer_key),) = _crypto_lines(result.answer_sdp)
    assert answered == suite and len(base64.b64decode(answer_key)) == key_octets
    row = rec.wait_for_recordings(1)[0]
    assert row["state"] == "complete" and row["srtp"] and row["reason"] is None, row
    expected, in_window = _plain_reference(pcap, seconds)
    sent = sum(result.packets_sent.values())
    assert sent == in_window, (sent, in_window)
    (stream,) = [s for s in row["streams"] if s["packets_received"]]
    assert stream["packets_received"] == sent and stream["packets_lost"] == 0
    assert stream["srtp_auth_failures"] == 0 and stream["status"] == "ok"
    got, rate = decode_mp3(rec.recordings / row["file"])
    corr, lag = envelope_match(got[:, 0], rate, expected, 8000)
    assert corr >= 0.9, (corr, lag)
    expected_s = len(expected) / 8000
    assert abs(row["duration_s"] - expected_s) / expected_s < 0.02, (row["duration_s"], expected_s)
    _assert_keys_nowhere(rec, answer_key)
