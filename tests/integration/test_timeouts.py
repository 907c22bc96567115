"""A vanished SRC never leaves a recording open: RTP inactivity ends the session."""

from __future__ import annotations

import re
import socket
import struct
import time
import uuid
from typing import Any

import pytest

from .test_policy_calls import siprec_invite_body
from .test_signalling import final_response, header, status

pytestmark = [pytest.mark.integration]


def test_rtp_inactivity_ends_the_call_with_a_bye(recorder_factory: Any) -> None:
    rec = recorder_factory(rtp={"inactivity_timeout": 2.0})
    target = rec.listeners["udp"]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    port = s.getsockname()[1]
    body, ctype = siprec_invite_body("tel:+32470000001", "tel:+3222000000")
    call_id = uuid.uuid4().hex
    head = (
        f"INVITE sip:srs@127.0.0.1:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id[:10]}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:src@127.0.0.1>;tag=src1\r\n"
        f"To: <sip:srs@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:src@127.0.0.1:{port}>;+sip.src\r\nRequire: siprec\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    s.sendto(head.encode() + body, target)
    resp = final_response(s)
    assert status(resp) == 200
    answer = resp.split(b"\r\n\r\n", 1)[1].decode()
    ports = [int(p) for p in re.findall(r"m=audio (\d+) ", answer)]
    ack = (
        f"ACK sip:srs@127.0.0.1:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKack{call_id[:6]}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:src@127.0.0.1>;tag=src1\r\nTo: {header(resp, 'To')}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    s.sendto(ack.encode(), target)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started = time.monotonic()
    for i in range(50):  # one second of A-law silence on leg 1, then the SRC vanishes
        pkt = struct.pack("!BBHII", 0x80, 8, i, i * 160, 0x1234) + b"\xd5" * 160
        rtp.sendto(pkt, ("127.0.0.1", ports[0]))
        time.sleep(0.02)
    bye, _ = s.recvfrom(65535)
    waited = time.monotonic() - started
    assert bye.startswith(b"BYE "), bye[:80]
    assert f"Call-ID: {call_id}".encode() in bye
    assert 2.0 <= waited <= 6.0, waited
    rows = rec.wait_for_recordings(1)
    assert rows[0]["call_id"] == call_id
    assert rows[0]["state"] == "complete" and rows[0]["reason"] == "rtp timeout"
    assert abs(rows[0]["duration_s"] - 1.0) < 0.2
    legs = {st["label"]: st["packets_received"] for st in rows[0]["streams"]}
    assert legs == {"1": 50, "2": 0}
