"""A bounded fuzz campaign of whole INVITEs against a running recorder.

Hypothesis (fixed seed: ``derandomize``) mutates a good SIPREC INVITE where the audit found
its losses (Call-ID, From/To, Contact, ``a=label``, the metadata) and at random bytes, and
sends each over UDP to the real ``serve``. Every input must get a final response; an input
answered 2xx is then ACKed and hung up (or left to the recorder's own timeouts), and at the
end every answered call has a finished index row (``complete`` or ``failed``, never stuck in
``recording``), no spool is left, and a good call still records. The parsers themselves are
fuzzed in ``tests/sip/test_fuzz.py`` and ``tests/rtp/test_fuzz.py``.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.interop.sipclient import siprec_call, siprec_invite

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOURCE = "127.0.0.5"
EXAMPLES = 40

_HOSTILE = st.binary(min_size=0, max_size=120) | st.sampled_from(
    [
        bytes.fromhex("72322dff40") + b"x",
        b"\r",
        b"\xff\xfe\xfd",
        b"L" * 101,
        b"x" * 5000,
        b"<sip:a@b",
        b'"\\"',
        b"%00",
        b"\x00",
    ]
)
_FIELDS = [b"Call-ID: ", b"From: <sip:src@", b"To: <sip:srs@", b"Contact: <", b"a=label:"]


def _final(sock: socket.socket, wait: float) -> bytes | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        m = re.match(rb"SIP/2\.0 (\d{3})", data)
        if m and int(m.group(1)) >= 200:
            return data
    return None


def _header(msg: bytes, name: bytes) -> bytes | None:
    for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == name.lower():
            return v.strip()
    return None


def _in_dialog(method: bytes, invite: bytes, ok: bytes, cseq: int, port: int) -> bytes | None:
    frm, to, call_id = _header(invite, b"from"), _header(ok, b"to"), _header(invite, b"call-id")
    if frm is None or to is None or call_id is None:
        return None
    return (
        b"%s sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
        b"Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
        b"Content-Length: 0\r\n\r\n"
        % (
            method,
            SOURCE.encode(),
            port,
            secrets.token_hex(6).encode(),
            frm,
            to,
            call_id,
            cseq,
            method,
        )
    )


def _mutate(data: bytes, field: int, value: bytes, flips: list[tuple[int, int]]) -> bytes:
    key = _FIELDS[field]
    at = data.find(key)
    if at != -1:
        start = at + len(key)
        end = data.find(b"\r\n", start)
        data = data[:start] + value + data[end:]
    buf = bytearray(data)
    for pos, byte in flips:
        buf[pos % len(buf)] = byte
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    head = re.sub(rb"Content-Length: *\d+", b"Content-Length: %d" % len(body), head)
    return head + sep + body


def test_every_hostile_invite_gets_an_answer_and_a_consistent_row(recorder_factory: Any) -> None:
    rec = recorder_factory(rtp={"inactivity_timeout": 2.0})
    target = rec.listeners["udp"]
    outcomes: list[int | None] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        field=st.integers(0, len(_FIELDS) - 1),
        value=_HOSTILE,
        flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    )
    def one(field: int, value: bytes, flips: list[tuple[int, int]]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((SOURCE, 0))
        port = sock.getsockname()[1]
        try:
            invite = siprec_invite(
                call_id=f"fuzz-{secrets.token_hex(6)}@{SOURCE}",
                local=(SOURCE, port),
                target=target,
                transport="udp",
                aors=("tel:+32470000001", "tel:+32470999999"),
                rtp_port=46000,
            )
            data = _mutate(invite, field, value, flips)
            sock.sendto(data, target)
            final = _final(sock, 3.0)
            status = int(final[8:11]) if final else None
            outcomes.append(status)
            if final is not None and status == 200:
                for method, cseq in ((b"ACK", 1), (b"BYE", 2)):
                    req = _in_dialog(method, data, final, cseq, port)
                    if req is not None:
                        sock.sendto(req, target)
                _final(sock, 1.0)
        finally:
            sock.close()

    one()
    assert rec.proc is not None and rec.proc.poll() is None, "the recorder died"
    # Every input got an answer. (A datagram the parser cannot frame at all is dropped, as
    # RFC 3261 section 18.3 says; a mutation can make one.)
    answered = [s for s in outcomes if s is not None]
    assert len(answered) >= len(outcomes) * 0.8, outcomes
    assert all(s == 200 or 400 <= s < 600 for s in answered), outcomes

    # Every answered call ends in a finished row (BYE, or the recorder's own timeouts).
    deadline = time.monotonic() + 90
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = rec.search()
        if not [r for r in rows if r["state"] == "recording"]:
            break
        time.sleep(1.0)
    assert not [r for r in rows if r["state"] == "recording"], rows
    recorded = [r for r in rows if r["state"] in ("complete", "failed", "interrupted")]
    assert len(recorded) == answered.count(200), (len(recorded), outcomes)
    good = siprec_call(target, source_ip=SOURCE, duration=0.5)
    assert good.status == 200 and good.bye_status == 200
    print(f"fuzzed {len(outcomes)} INVITEs: statuses {sorted(set(map(str, outcomes)))}")
