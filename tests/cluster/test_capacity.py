"""A node that cannot take a call says so to the dispatcher: 503 + Retry-After, OPTIONS too."""

from __future__ import annotations

from typing import Any

from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.sip.events import RequestReceived, TransactionKey
from siprec_recorder.sip.message import SipRequest, parse_message
from siprec_recorder.siprec.server import SessionRecordingServer, SrsSettings
from tests.siprec.test_server_unit import SRC, FakeIndex, FakePorts, FakeSip, FakeSpool, invite


def options() -> SipRequest:
    text = (
        "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:kamailio@127.0.0.1>;tag=k\r\nTo: <sip:srs@127.0.0.1>\r\n"
        "Call-ID: probe1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


class Ports(FakePorts):
    def __init__(self, available: int) -> None:
        super().__init__()
        self.available = available


def srs(sip: FakeSip, ports: Any, **settings: Any) -> SessionRecordingServer:
    return SessionRecordingServer(
        sip=sip,
        index=FakeIndex(),
        policy=None,
        spool=FakeSpool(),
        recordings_root="/tmp",
        ports=ports,
        executor=None,
        settings=SrsSettings(**settings),
        receiver_factory=LegReceiver,
    )


async def ask(server: SessionRecordingServer, sip: FakeSip, req: SipRequest) -> Any:
    tx = TransactionKey(req.headers.get("Via") or "", "127.0.0.1:5070", req.method)
    server.on_event(RequestReceived(req, tx, SRC))
    await server.drain()
    return sip.responses[-1]


async def test_options_is_200_while_the_node_can_take_calls() -> None:
    sip = FakeSip()
    resp = await ask(srs(sip, Ports(100)), sip, options())
    assert resp.status == 200


async def test_full_node_answers_options_and_invite_with_503_retry_after() -> None:
    sip = FakeSip()
    server = srs(sip, Ports(100), max_sessions=1)
    server.sessions["busy"] = object()  # type: ignore[assignment]
    resp = await ask(server, sip, options())
    assert resp.status == 503 and resp.headers.get("Retry-After") == "10"
    assert "recorder at capacity" in (resp.headers.get("Warning") or "")
    resp = await ask(server, sip, invite("c2"))
    assert resp.status == 503 and resp.headers.get("Retry-After")


async def test_no_rtp_ports_and_low_disk_answer_options_503() -> None:
    sip = FakeSip()
    resp = await ask(srs(sip, Ports(1)), sip, options())
    assert resp.status == 503 and "no RTP ports free" in (resp.headers.get("Warning") or "")
    sip = FakeSip()
    resp = await ask(srs(sip, Ports(100), min_free_mb=10**12), sip, options())
    assert resp.status == 503 and "storage full" in (resp.headers.get("Warning") or "")
