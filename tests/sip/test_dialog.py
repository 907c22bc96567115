"""Dialog: both sides' route sets and the requests built on them (RFC 3261 12.1, 12.2.1.1)."""

from __future__ import annotations

import pytest

from siprec_recorder.sip.dialog import Dialog
from siprec_recorder.sip.message import SipRequest, SipResponse, parse_message
from siprec_recorder.sip.uri import SipUri

INVITE = (
    "INVITE sip:srs@10.0.0.5 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsrc\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:src@192.0.2.10>;tag=src1\r\n"
    "To: <sip:srs@10.0.0.5>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n"
    "Contact: <sip:src@192.0.2.10:5062>\r\n{rr}Content-Length: 0\r\n\r\n"
)
OK = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsrc\r\n"
    "From: <sip:src@192.0.2.10>;tag=src1\r\n"
    "To: <sip:srs@10.0.0.5>;tag=srs9\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n"
    "{rr}Contact: <sip:srs@10.0.0.5:5070;transport=udp>\r\nContent-Length: 0\r\n\r\n"
)


def invite(rr: str = "") -> SipRequest:
    msg = parse_message(INVITE.format(rr=rr).encode())
    assert isinstance(msg, SipRequest)
    return msg


def ok(rr: str = "") -> SipResponse:
    msg = parse_message(OK.format(rr=rr).encode())
    assert isinstance(msg, SipResponse)
    return msg


def uac(rr: str = "") -> Dialog:
    return Dialog.from_response(invite(), ok(rr))


def test_uac_dialog_from_the_2xx() -> None:
    d = uac()
    assert (d.id.call_id, d.id.local_tag, d.id.remote_tag) == ("c1", "src1", "srs9")
    assert d.remote_target == "sip:srs@10.0.0.5:5070;transport=udp"
    assert d.route_set == () and d.local_cseq == 7 and d.remote_cseq == 0


def test_uac_route_set_is_the_record_route_reversed() -> None:
    # two header lines, the second with two values: the proxy nearest to the UAC is last
    rr = "Record-Route: <sip:p3.example;lr>\r\nRecord-Route: <sip:p2;lr>, <sip:p1:5080;lr>\r\n"
    assert uac(rr).route_set == ("<sip:p1:5080;lr>", "<sip:p2;lr>", "<sip:p3.example;lr>")


def test_uas_route_set_keeps_the_record_route_order() -> None:
    d = Dialog.from_invite(invite("Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"), "srs9")
    assert d.route_set == ("<sip:p1;lr>", "<sip:p2;lr>")
    assert (d.id.local_tag, d.id.remote_tag, d.remote_target) == (
        "srs9",
        "src1",
        "sip:src@192.0.2.10:5062",
    )


def test_without_a_route_set_the_request_goes_to_the_remote_target() -> None:
    d, bye = uac().request("BYE")
    assert bye.uri == "sip:srs@10.0.0.5:5070;transport=udp"
    assert "Route" not in bye.headers
    assert d.next_hop() == SipUri("sip", "srs", None, "10.0.0.5", 5070, (("transport", "udp"),))


def test_loose_first_route() -> None:
    d = uac("Record-Route: <sip:p2.example;lr>, <sip:127.0.0.2:5080;lr;ftag=src1>\r\n")
    d2, bye = d.request("BYE", extra=(("Via", "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKb"),))
    assert bye.uri == "sip:srs@10.0.0.5:5070;transport=udp"
    assert bye.headers.get_all("Route") == [
        "<sip:127.0.0.2:5080;lr;ftag=src1>",
        "<sip:p2.example;lr>",
    ]
    assert bye.headers.get("From") == "<sip:src@192.0.2.10>;tag=src1"
    assert bye.headers.get("To") == "<sip:srs@10.0.0.5>;tag=srs9"
    assert bye.cseq == (8, "BYE") and d2.local_cseq == 8
    hop = d.next_hop()
    assert hop is not None and (hop.host, hop.port) == ("127.0.0.2", 5080)
    again = parse_message(bye.serialize())
    assert isinstance(again, SipRequest) and again.headers.get_all("Route") == bye.headers.get_all(
        "Route"
    )


@pytest.mark.parametrize("lr", [";lr", ";lr=on", ";LR"])
def test_lr_forms(lr: str) -> None:
    _, bye = uac(f"Record-Route: <sip:127.0.0.2{lr}>\r\n").request("BYE")
    assert bye.uri == "sip:srs@10.0.0.5:5070;transport=udp"


def test_strict_first_route() -> None:
    d = uac("Record-Route: <sip:p2.example;lr>, <sip:127.0.0.2:5080;transport=udp>\r\n")
    _, bye = d.request("BYE")
    assert bye.uri == "sip:127.0.0.2:5080;transport=udp"
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example;lr>",
        "<sip:srs@10.0.0.5:5070;transport=udp>",
    ]
    hop = d.next_hop()
    assert hop is not None and (hop.host, hop.port) == ("127.0.0.2", 5080)


def test_ack_of_the_2xx_is_routed_and_keeps_the_invite_cseq() -> None:
    d = uac("Record-Route: <sip:127.0.0.2:5080;lr>\r\n")
    ack = d.ack(7, extra=(("Contact", "<sip:src@192.0.2.10>"),))
    assert (ack.method, ack.uri, ack.cseq) == (
        "ACK",
        "sip:srs@10.0.0.5:5070;transport=udp",
        (7, "ACK"),
    )
    assert ack.headers.get_all("Route") == ["<sip:127.0.0.2:5080;lr>"]
    assert ack.headers.get("Contact") == "<sip:src@192.0.2.10>"
    _, bye = d.request("BYE")
    assert bye.cseq == (8, "BYE")  # the ACK did not use up a CSeq


def test_strict_ack() -> None:
    ack = uac("Record-Route: <sip:127.0.0.2:5080>\r\n").ack(7)
    assert ack.uri == "sip:127.0.0.2:5080"
    assert ack.headers.get_all("Route") == ["<sip:srs@10.0.0.5:5070;transport=udp>"]


def test_without_contact_the_remote_target_is_the_request_uri() -> None:
    text = OK.format(rr="").replace("Contact: <sip:srs@10.0.0.5:5070;transport=udp>\r\n", "")
    response = parse_message(text.encode())
    assert isinstance(response, SipResponse)
    assert Dialog.from_response(invite(), response).remote_target == "sip:srs@10.0.0.5"
