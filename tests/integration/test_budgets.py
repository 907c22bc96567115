"""Budgets per source: a greedy source gets its own refusal, naming the budget, while a
second source's calls are recorded untouched (the audit's "starvation" finding)."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest

from tests.interop.sipclient import exchange_udp, siprec_call, siprec_invite

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GREEDY, OTHER = "127.0.0.3", "127.0.0.4"


def _invite_with_lines(target: tuple[str, int], lines: int) -> bytes:
    data = siprec_invite(
        call_id=f"many-lines-{lines}@{GREEDY}",
        local=(GREEDY, 5099),
        target=target,
        transport="udp",
        aors=("tel:+32470000001", "tel:+32470999999"),
        rtp_port=42000,
    )
    head, _, body = data.partition(b"\r\n\r\n")
    extra = b"".join(
        b"m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:%d\r\na=sendonly\r\n"
        % (42004 + 2 * i, 3 + i)
        for i in range(lines - 2)
    )
    body = body.replace(
        b"--interop-boundary-7866\r\nContent-Type: application/rs",
        extra + b"--interop-boundary-7866\r\nContent-Type: application/rs",
        1,
    )
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
    return head + b"\r\n\r\n" + body


def _recorded(rec: Any, call_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = [r for r in rec.search() if r["call_id"] == call_id and r["state"] != "recording"]
        if rows:
            return rows[0]
        time.sleep(0.5)
    raise AssertionError(f"{call_id} not recorded:\n{rec.log()[-3000:]}")


def test_rtp_port_and_media_line_budgets(recorder_factory: Any) -> None:
    rec = recorder_factory(admission={"max_ports_per_source": 4, "max_media_lines": 4})
    target = rec.listeners["udp"]

    # 1. Too many m-lines in one INVITE: refused at once, the budget named.
    answers = exchange_udp(target, _invite_with_lines(target, 6), source_ip=GREEDY)
    final = [r for r in answers if r.status >= 200]
    assert final and final[0].status == 488, [r.status for r in answers]
    assert final[0].header("warning") == '399 - "budget: media-lines-per-invite"'

    # 2. The greedy source holds 4 port pairs (two calls left open); its third call is refused.
    held = [siprec_call(target, source_ip=GREEDY, duration=0.2, hang_up=False) for _ in range(2)]
    assert [c.status for c in held] == [200, 200]
    third = siprec_call(target, source_ip=GREEDY, duration=0.2)
    assert third.status == 503 and third.retry_after

    # 3. Meanwhile the other source is recorded untouched.
    other = siprec_call(target, source_ip=OTHER, duration=1.0)
    assert other.status == 200 and other.bye_status == 200
    row = _recorded(rec, other.call_id)
    assert row["state"] == "complete"
    assert {s["label"]: s["packets_received"] for s in row["streams"]} == {"1": 50, "2": 50}
    assert "budget rtp-ports-per-source" in rec.log()


def test_sessions_per_source_budget(recorder_factory: Any) -> None:
    rec = recorder_factory(sip={"max_sessions_per_source": 1})
    target = rec.listeners["udp"]
    first = siprec_call(target, source_ip=GREEDY, duration=0.2, hang_up=False)
    assert first.status == 200
    data = siprec_invite(
        call_id=f"second@{GREEDY}",
        local=(GREEDY, 5098),
        target=target,
        transport="udp",
        aors=("tel:+32470000001", "tel:+32470999999"),
        rtp_port=43000,
    )
    final = [r for r in exchange_udp(target, data, source_ip=GREEDY) if r.status >= 200]
    assert final and final[0].status == 503
    assert final[0].header("warning") == '399 - "budget: sessions-per-source"'
    other = siprec_call(target, source_ip=OTHER, duration=0.5)
    assert other.status == 200 and other.bye_status == 200
    assert _recorded(rec, other.call_id)["state"] == "complete"


def test_invite_rate_budget(recorder_factory: Any) -> None:
    rec = recorder_factory(sip={"rate_limit_per_source": 1.0, "rate_limit_burst": 2})
    target = rec.listeners["udp"]
    statuses = []
    for i in range(4):
        data = siprec_invite(
            call_id=f"rate-{i}@{GREEDY}",
            local=(GREEDY, 5090 + i),
            target=target,
            transport="udp",
            aors=("tel:+32470000001", "tel:+32470999999"),
            rtp_port=44000 + 4 * i,
        )
        answers = exchange_udp(target, data, source_ip=GREEDY, wait=1.0)
        final = [r for r in answers if r.status >= 200]
        statuses.append((final[0].status, final[0].header("warning")) if final else None)
    refused = [s for s in statuses if s and s[0] == 503]
    assert refused and all(w == '399 - "budget: invites-per-second"' for _s, w in refused)
    other = siprec_call(target, source_ip=OTHER, duration=0.5)
    assert other.status == 200 and _recorded(rec, other.call_id)["state"] == "complete"


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the recorder closed ``sock`` (None: still open after ``seconds``)."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def test_tcp_connection_budgets(recorder_factory: Any) -> None:
    rec = recorder_factory(sip={"max_connections_per_source": 3, "first_message_timeout": 2.0})
    target = rec.listeners["tcp"]

    def connect(source_ip: str) -> socket.socket:
        s = socket.create_connection(target, timeout=5, source_address=(source_ip, 0))
        return s

    greedy = [connect(GREEDY) for _ in range(5)]
    slow = connect("127.0.0.6")
    silent = connect("127.0.0.7")
    try:
        # Past its budget, a source's connections are closed at once; the first three stay
        # until the first-message timeout.
        extra = [_closed_within(s, 1.0) for s in greedy[3:]]
        assert all(t is not None for t in extra), extra
        # Slowloris: a byte every 0.5 s of a message that never ends does not keep it open.
        message = b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.6:5060"
        t0 = time.monotonic()
        closed_at = None
        for byte in message:
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed_at = time.monotonic() - t0
                break
            if _closed_within(slow, 0.5) is not None:
                closed_at = time.monotonic() - t0
                break
        assert closed_at is not None and closed_at < 6.0, closed_at
        assert _closed_within(silent, 6.0) is not None  # never sent a byte
        # Another source's call over TCP is recorded meanwhile.
        other = siprec_call(target, transport="tcp", source_ip=OTHER, duration=0.5)
        assert other.status == 200 and other.bye_status == 200
        assert _recorded(rec, other.call_id)["state"] == "complete"
        assert "budget connections-per-source (3) reached" in rec.log()
    finally:
        for s in (*greedy, slow, silent):
            s.close()
