"""The replay tool's ACK and BYE follow the route set of the 2xx (RFC 3261 12.1.2, 12.2.1.1)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from siprec_recorder.replay import replay_capture
from siprec_recorder.replay.sipmini import MiniMessage, parse_message
from siprec_recorder.replay.src import SrcOptions, _destination, _dialog_after, _Uac
from siprec_recorder.sip.message import SipRequest
from tests.replay.fake_srs import FakeSrs

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
OPTIONS = SrcOptions(to=("127.0.0.1", 5060))


def uac() -> _Uac:
    return _Uac(
        call_id="c1@127.0.0.1",
        local_tag="src1",
        request_uri="sip:srs@127.0.0.1:5060",
        to_uri="sip:srs@127.0.0.1:5060",
        from_uri="sip:src@127.0.0.1:40000",
        contact="<sip:src@127.0.0.1:40000>;+sip.src",
        via_transport="UDP",
        local=("127.0.0.1", 40000),
    )


def ok(*record_route: str, contact: str = "<sip:srs@192.0.2.5:5070>") -> MiniMessage:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    text = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport\r\n"
        "From: <sip:src@127.0.0.1:40000>;tag=src1\r\nTo: <sip:srs@127.0.0.1:5060>;tag=srs7\r\n"
        f"Call-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\n{rr}Contact: {contact}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert message is not None
    return message


def in_dialog(final: MiniMessage) -> tuple[SipRequest, SipRequest, tuple[str, int]]:
    """The ACK and BYE the replay sends after ``final``, and where they go."""
    u = uac()
    invite = u.request("INVITE", "z9hG4bKinv", cseq=1)
    dialog = _dialog_after(u, invite, final)
    ack = dialog.ack(invite.cseq[0], extra=u.in_dialog_headers())
    _, bye = dialog.request("BYE", extra=u.in_dialog_headers())
    hop = asyncio.run(_destination(dialog, OPTIONS))
    return ack, bye, hop


def test_loose_route_set() -> None:
    # as received: the proxy nearest to the recorder first, the one nearest to us last
    ack, bye, hop = in_dialog(ok("<sip:198.51.100.1;lr>", "<sip:127.0.0.2:5080;lr;ftag=src1>"))
    for request in (ack, bye):
        assert request.uri == "sip:srs@192.0.2.5:5070"
        assert request.headers.get_all("Route") == [
            "<sip:127.0.0.2:5080;lr;ftag=src1>",
            "<sip:198.51.100.1;lr>",
        ]
        assert request.headers.get("To") == "<sip:srs@127.0.0.1:5060>;tag=srs7"
        assert request.headers.get("From") == "<sip:src@127.0.0.1:40000>;tag=src1"
        assert request.headers.get("Contact") == "<sip:src@127.0.0.1:40000>;+sip.src"
    assert ack.cseq == (1, "ACK") and bye.cseq == (2, "BYE")
    assert ack.branch != bye.branch and ack.branch != "z9hG4bKinv"
    assert hop == ("127.0.0.2", 5080)


def test_strict_first_hop() -> None:
    ack, bye, hop = in_dialog(ok("<sip:198.51.100.1;lr>", "<sip:127.0.0.2:5080>"))
    for request in (ack, bye):
        assert request.uri == "sip:127.0.0.2:5080"
        assert request.headers.get_all("Route") == [
            "<sip:198.51.100.1;lr>",
            "<sip:srs@192.0.2.5:5070>",
        ]
    assert hop == ("127.0.0.2", 5080)


def test_without_a_route_set_to_the_contact() -> None:
    ack, bye, hop = in_dialog(ok())
    assert ack.uri == bye.uri == "sip:srs@192.0.2.5:5070"
    assert "Route" not in ack.headers and "Route" not in bye.headers
    assert hop == ("192.0.2.5", 5070)


def test_a_first_hop_by_name_is_resolved_and_gets_the_default_port() -> None:
    *_, hop = in_dialog(ok("<sip:localhost;lr>"))
    assert hop == ("127.0.0.1", 5060)


def test_an_unreadable_contact_falls_back_to_the_invite_uri_and_to() -> None:
    ack, bye, hop = in_dialog(ok(contact="<sip:srs@bad host>"))
    assert ack.uri == bye.uri == "sip:srs@127.0.0.1:5060"
    assert "Route" not in bye.headers
    assert bye.headers.get("To") == "<sip:srs@127.0.0.1:5060>;tag=srs7"
    assert hop == ("127.0.0.1", 5060)


# -- on loopback: the requests arrive at the first hop -----------------------------------


class Hop:
    """A UDP socket standing for the proxy of the route set: records what reaches it and
    answers BYE with 200 (the recorder behind it is not needed to check the routing)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[MiniMessage] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, addr = await loop.sock_recvfrom(self.sock, 65535)
            message = parse_message(data)
            assert message is not None
            self.received.append(message)
            if message.method == "BYE":
                lines = ["SIP/2.0 200 OK"]
                for name in ("via", "from", "to", "call-id", "cseq"):
                    lines += [f"{name}: {v}" for v in message.header_all(name)]
                reply = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
                await loop.sock_sendto(self.sock, reply.encode(), addr)


@pytest.fixture
async def hop() -> AsyncIterator[Hop]:
    h = Hop()
    h.task = asyncio.get_running_loop().create_task(h.run())
    yield h
    h.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await h.task
    h.sock.close()


@pytest.mark.integration
@pytest.mark.parametrize("lr", [";lr", ""])
async def test_ack_and_bye_go_to_the_first_route(hop: Hop, lr: str) -> None:
    route = f"<sip:127.0.0.1:{hop.port}{lr}>"
    srs = FakeSrs(record_route=("<sip:192.0.2.99;lr>", route))
    to = await srs.start()
    try:
        result = await replay_capture(PCAPS / "sipp_g711a.pcap", to, speed=20.0)
    finally:
        await srs.stop()
    assert result.ok, result
    assert not srs.ack_received.is_set() and not srs.bye_received.is_set()  # not around it
    assert [m.method for m in hop.received] == ["ACK", "BYE"]
    contact = f"sip:srs@127.0.0.1:{srs.port}"
    for message in hop.received:
        if lr:
            assert message.uri == contact
            assert message.header_all("route") == [route, "<sip:192.0.2.99;lr>"]
        else:
            assert message.uri == f"sip:127.0.0.1:{hop.port}"
            assert message.header_all("route") == ["<sip:192.0.2.99;lr>", f"<{contact}>"]
    assert [m.cseq for m in hop.received] == [(1, "ACK"), (2, "BYE")]
