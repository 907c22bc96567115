"""Budgets per source: a greedy source gets its own refusal, naming the budget, while a
second source's calls are recorded untouched (the audit's "starvation" finding)."""

from __future__ import annotations

import json
import re
import secrets
import socket
import struct
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.interop.sipclient import (
    Response,
    _ack_non2xx,
    exchange_udp,
    in_dialog_request,
    sdp_ports,
    siprec_call,
    siprec_invite,
)

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


def _metrics(rec: Any) -> str:
    host, port = rec.listeners["metrics"]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _udp_request(sock: socket.socket, target: tuple[str, int], data: bytes) -> Response:
    """Send ``data`` on ``sock`` (resent as Timer A would) and return the final response."""
    from tests.interop.sipclient import parse_response

    method = data.split(b" ", 1)[0].decode()
    deadline = time.monotonic() + 10
    sock.sendto(data, target)
    resent = time.monotonic()
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            r = parse_response(sock.recv(65535))
        except TimeoutError:
            if time.monotonic() - resent > 1.0:
                sock.sendto(data, target)
                resent = time.monotonic()
            continue
        if r is not None and r.status >= 200 and (r.header("cseq") or "").endswith(method):
            return r
    raise AssertionError("no final response")


def _reinvite(invite: bytes, ok: Response, local: tuple[str, int], sdp: bytes, cseq: int) -> bytes:
    """A re-INVITE in the dialog of ``ok`` carrying ``sdp`` (an SDP offer)."""
    head = in_dialog_request("INVITE", invite, ok, cseq, local, "udp").split(b"\r\n\r\n")[0]
    head = head.replace(b"\r\nContent-Length: 0", b"")
    return (
        head
        + b"\r\nContact: <sip:src@%s:%d>;+sip.src\r\nContent-Type: application/sdp\r\n"
        % (local[0].encode(), local[1])
        + b"Content-Length: %d\r\n\r\n" % len(sdp)
        + sdp
    )


def _offer(host: str, ports: list[int]) -> bytes:
    return (
        f"v=0\r\no=src 1 2 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n".encode()
        + b"".join(
            b"m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:%d\r\na=sendonly\r\n"
            % (port, i + 1)
            for i, port in enumerate(ports)
        )
    )


def test_reinvite_adding_streams_past_the_port_budget(recorder_factory: Any) -> None:
    """A greedy source's re-INVITE that adds m-lines gets its 503 naming the budget; its
    call keeps recording its first two streams, and another source's call is recorded."""
    rec = recorder_factory(admission={"max_ports_per_source": 4, "max_media_lines": 8})
    target = rec.listeners["udp"]
    # The greedy source's first call holds two port pairs (left open, not hung up).
    held = siprec_call(target, source_ip=GREEDY, duration=0.2, hang_up=False)
    assert held.status == 200

    sig = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sig.bind((GREEDY, 0))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((GREEDY, 0))
    local = sig.getsockname()[:2]
    call_id = f"grow-{secrets.token_hex(4)}@{GREEDY}"
    invite = siprec_invite(
        call_id=call_id,
        local=local,
        target=target,
        transport="udp",
        aors=("tel:+32470000001", "tel:+32470999999"),
        rtp_port=45000,
    )
    try:
        ok = _udp_request(sig, target, invite)
        assert ok.status == 200
        sig.sendto(in_dialog_request("ACK", invite, ok, 1, local, "udp"), target)
        legs = [p for p in sdp_ports(ok.body) if p[1] > 0]
        assert len(legs) == 2
        seq = 0
        payload = bytes([0xA5] * 10 + [0x25] * 10) * 8

        def send_rtp(seconds: float) -> None:
            nonlocal seq
            start = time.monotonic()
            for n in range(int(seconds / 0.02)):
                for k, leg in enumerate(legs):
                    header = struct.pack("!BBHII", 0x80, 8, seq, seq * 160, 0x2000 + k)
                    rtp.sendto(header + payload, leg)
                seq += 1
                wait = start + 0.02 * (n + 1) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)

        send_rtp(1.0)
        # Two more m-lines: 2 (held) + 2 (this call) + 2 > 4, and they would fit once the
        # held call ends, so 503 with Retry-After.
        grow = _reinvite(invite, ok, local, _offer(GREEDY, [45000, 45002, 45004, 45006]), 2)
        refused = _udp_request(sig, target, grow)
        assert refused.status == 503, refused
        assert refused.header("warning") == '399 - "budget: rtp-ports-per-source"'
        assert refused.header("retry-after")
        sig.sendto(_ack_non2xx(grow, refused), target)  # RFC 3261 section 17.1.1.3
        send_rtp(1.0)
        text = _metrics(rec)
        assert 'siprec_budget_refusals_total{budget="rtp-ports-per-source"} 1' in text
        assert "siprec_sessions_active 2" in text
        # Meanwhile another source's call is recorded untouched.
        other = siprec_call(target, source_ip=OTHER, duration=0.5)
        assert other.status == 200 and other.bye_status == 200
        assert _recorded(rec, other.call_id)["state"] == "complete"
        bye = in_dialog_request("BYE", invite, ok, 3, local, "udp")
        assert _udp_request(sig, target, bye).status == 200
    finally:
        sig.close()
        rtp.close()
    row = _recorded(rec, call_id)
    assert row["state"] == "complete", row
    # Both first streams recorded every packet, before and after the refused re-INVITE.
    assert {s["label"]: s["packets_received"] for s in row["streams"]} == {"1": 100, "2": 100}
    assert "Traceback" not in rec.log()
    assert f"call {call_id}: INVITE from {GREEDY} refused: budget rtp-ports-per-source" in rec.log()


def _completeness(rec: Any) -> dict[str, Any]:
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    res = rec.cli("report", "completeness", "--since", since, "--json")
    return dict(json.loads(res.stdout))


def test_a_flood_of_refused_invites_leaves_a_bounded_number_of_rows(
    recorder_factory: Any,
) -> None:
    rec = recorder_factory(sip={"max_sessions_per_source": 1})
    target = rec.listeners["udp"]
    held = siprec_call(target, source_ip=GREEDY, duration=0.2, hang_up=False)
    assert held.status == 200
    flood = 80
    t0 = time.monotonic()
    statuses = []
    for i in range(flood):
        data = siprec_invite(
            call_id=f"flood-{i}@{GREEDY}",
            local=(GREEDY, 5200 + i),
            target=target,
            transport="udp",
            aors=("tel:+32470000001", "tel:+32470999999"),
            rtp_port=46000,
        )
        final = [r for r in exchange_udp(target, data, source_ip=GREEDY) if r.status >= 200]
        statuses.append(final[0].status if final else None)
    elapsed = time.monotonic() - t0
    assert set(statuses) == {503}, statuses
    # Every refusal is counted; index rows: the burst, then one a second.
    bound = 20 + int(elapsed) + 1
    deadline = time.monotonic() + 20
    while True:
        text = _metrics(rec)
        m = re.search(
            r'siprec_refusals_not_indexed_total\{budget="sessions-per-source",cause="row-limit"\}'
            r" (\d+)",
            text,
        )
        rows = [r for r in rec.search() if r["reason"] == "source-at-capacity"]
        if m and len(rows) + int(m.group(1)) == flood:
            break
        assert time.monotonic() < deadline, (len(rows), m and m.group(1))
        time.sleep(0.5)
    assert 20 <= len(rows) <= bound, (len(rows), bound)
    assert all(r["state"] == "declined" for r in rows)
    assert f'siprec_budget_refusals_total{{budget="sessions-per-source"}} {flood}' in text
    # The regulated calls that were indexed are in the completeness report.
    report = _completeness(rec)
    assert report["declined_by_reason"]["source-at-capacity"] == len(rows), report
    assert "not all indexed" in rec.log()
