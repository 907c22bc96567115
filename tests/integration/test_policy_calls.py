"""The recording policy enforced on real INVITEs by the running recorder.

Numbers and schedules are set with the CLI against the live index, exactly as a fleet
manager's script would; the recorder picks the change up by itself (policy version counter).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from siprec_recorder.replay.api import replay_capture

from .conftest import PCAPS
from .test_signalling import header, request, status

pytestmark = [pytest.mark.integration]

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TRADER = "+32470000001"


NOT_RECORDED = '399 - "not recorded"'  # every policy refusal looks the same on the wire


def siprec_invite_body(caller: str, callee: str) -> tuple[bytes, str]:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n"
        "m=audio 40002 RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n"
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>'
        '<session session_id="s1"/>'
        f'<participant participant_id="p1"><nameID aor="{caller}"/></participant>'
        f'<participant participant_id="p2"><nameID aor="{callee}"/></participant>'
        '<stream stream_id="a" session_id="s1"><label>1</label></stream>'
        '<stream stream_id="b" session_id="s1"><label>2</label></stream>'
        '<participantstreamassoc participant_id="p1"><send>a</send></participantstreamassoc>'
        '<participantstreamassoc participant_id="p2"><send>b</send></participantstreamassoc>'
        "</recording>\r\n"
    )
    body = (
        "--b1\r\nContent-Type: application/sdp\r\n\r\n"
        + sdp
        + "--b1\r\nContent-Type: application/rs-metadata+xml\r\n"
        "Content-Disposition: recording-session\r\n\r\n" + xml + "--b1--\r\n"
    )
    return body.encode(), "multipart/mixed;boundary=b1"


def invite(rec: Any, caller: str, callee: str = "tel:+3222000000") -> bytes:
    body, ctype = siprec_invite_body(caller, callee)
    resp, _ = request(
        "INVITE",
        rec.listeners["udp"],
        body=body,
        ctype=ctype,
        extra="Require: siprec",
        call_id=uuid.uuid4().hex,
    )
    return resp


def slot_now(offset_days: int = 0) -> str:
    now = datetime.now(ZoneInfo("Europe/Brussels")) + timedelta(days=offset_days)
    return f"{DAYS[now.weekday()]} 00:00-24:00"


def wait_policy(rec: Any, caller: str, expect: int, timeout: float = 10.0) -> bytes:
    """The engine reloads within ~2 s of a change made by another process."""
    deadline = time.monotonic() + timeout
    while True:
        resp = invite(rec, caller)
        if status(resp) == expect or time.monotonic() > deadline:
            return resp
        time.sleep(0.5)


def test_schedules_modes_and_unknown_numbers(recorder: Any) -> None:
    rec = recorder
    rec.cli(
        "numbers",
        "add",
        TRADER,
        "--user",
        "trader1",
        "--name",
        "Trader One",
        "--managed",
        "yes",
        "--status",
        "auto",
        "--slot",
        slot_now(+2),
    )
    # Outside its slot (the slot is on another weekday): declined with the reason.
    resp = wait_policy(rec, f"sip:{TRADER}@sbc.example;user=phone", 403)
    assert status(resp) == 403
    assert header(resp, "Warning") == NOT_RECORDED
    declined = rec.search("--number", TRADER)
    assert [r["state"] for r in declined] == ["declined"]
    assert declined[0]["reason"] == "outside-schedule"
    assert not list(rec.recordings.rglob("*.mp3"))

    # Inside its slot: recorded (a real call with audio through the replay tool).
    rec.cli("numbers", "schedule", TRADER, "--slot", slot_now(0))
    assert status(wait_policy(rec, f"tel:{TRADER}", 200)) == 200
    result = asyncio.run(
        replay_capture(
            PCAPS / "pkts_sip_rtp.pcap",
            rec.listeners["udp"],
            caller_aor=f"sip:{TRADER}@sbc.example;user=phone",
        )
    )
    assert result.ok
    rows = [r for r in rec.wait_for_recordings(1, number=TRADER) if r["call_id"] == result.call_id]
    assert rows and rows[0]["state"] == "complete" and rows[0]["recorded_number"] == TRADER

    # Manual + private: declined.
    rec.cli("numbers", "set", TRADER, "--status", "manual")
    rec.cli("numbers", "mode", TRADER, "private")
    resp = wait_policy(rec, f"tel:{TRADER}", 403)
    assert header(resp, "Warning") == NOT_RECORDED
    # Manual + professional: recorded.
    rec.cli("numbers", "mode", TRADER, "professional")
    assert status(wait_policy(rec, f"tel:{TRADER}", 200)) == 200


def test_emergency_calls_leave_nothing_but_a_counter(recorder: Any) -> None:
    rec = recorder
    for aor in (
        "tel:112",
        "sip:112@sbc.example",
        "112;phone-context=+32",
        "urn:service:sos.police",
    ):
        resp = invite(rec, f"tel:{TRADER}", aor)
        assert status(resp) == 403, aor
        assert header(resp, "Warning") == NOT_RECORDED
    assert rec.search() == []
    assert not list(rec.recordings.rglob("*.mp3"))
    assert (
        not list((rec.recordings / ".spool").glob("**/manifest.json"))
        if (rec.recordings / ".spool").exists()
        else True
    )
    import urllib.request

    host, port = rec.listeners["metrics"]
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    assert "siprec_emergency_calls_total 4" in text


def test_unknown_numbers_declined_when_configured(recorder_factory: Any) -> None:
    rec = recorder_factory(policy={"unknown_numbers": "decline"})
    resp = invite(rec, "tel:+32499999999", "tel:+3222000000")
    assert status(resp) == 403
    assert header(resp, "Warning") == NOT_RECORDED
    rows = rec.search("--number", "+32499999999")
    assert [r["reason"] for r in rows] == ["unknown-number"]


def test_unknown_numbers_recorded_by_default(recorder: Any) -> None:
    assert status(invite(recorder, "tel:+32499999999")) == 200
