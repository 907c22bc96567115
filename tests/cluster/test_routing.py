"""The recorder's own BYE follows the dialog's route set (RFC 3261 12.2.1.1)."""

from __future__ import annotations

from types import SimpleNamespace

from siprec_recorder.sip.events import Address
from siprec_recorder.sip.message import SipRequest, parse_message
from siprec_recorder.siprec.routing import bye_for, dialog_of


def invite(*record_route: str) -> SipRequest:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    text = (
        "INVITE sip:srs@10.0.0.5 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKp1\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsbc\r\n"
        f"{rr}Max-Forwards: 69\r\nFrom: <sip:sbc@192.0.2.10>;tag=src1\r\n"
        "To: <sip:srs@10.0.0.5>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n"
        "Contact: <sip:sbc@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def session(req: SipRequest) -> SimpleNamespace:
    return SimpleNamespace(
        dialog=dialog_of(req, "ourtag"),
        source=Address("udp", "127.0.0.2", 5060),
        call_id="c1", local_tag="ourtag", remote_tag="src1",
        local_uri="<sip:srs@10.0.0.5>", remote_uri="<sip:sbc@192.0.2.10>;tag=src1",
        remote_target="sip:sbc@192.0.2.10:5060", local_cseq=0,
    )  # fmt: skip


def test_loose_route_set_goes_into_route_headers() -> None:
    s = session(invite("<sip:127.0.0.2:5070;lr>", "<sip:198.51.100.1;lr>"))
    bye, dest = bye_for(s, "10.0.0.5:5060")
    assert bye.method == "BYE" and bye.uri == "sip:sbc@192.0.2.10:5060"
    assert bye.headers.get_all("Route") == ["<sip:127.0.0.2:5070;lr>", "<sip:198.51.100.1;lr>"]
    assert (dest.host, dest.port) == ("127.0.0.2", 5070)  # the first hop
    assert bye.headers.get("To") == "<sip:sbc@192.0.2.10>;tag=src1"
    assert "tag=ourtag" in (bye.headers.get("From") or "")
    first = bye.cseq[0]
    again, _ = bye_for(s, "10.0.0.5:5060")
    assert again.cseq[0] == first + 1


def test_strict_first_hop_gets_the_request_addressed_to_itself() -> None:
    s = session(invite("<sip:127.0.0.2:5070>", "<sip:198.51.100.1;lr>"))
    bye, dest = bye_for(s, "10.0.0.5:5060")
    assert bye.uri == "sip:127.0.0.2:5070"
    assert bye.headers.get_all("Route") == [
        "<sip:198.51.100.1;lr>",
        "<sip:sbc@192.0.2.10:5060>",
    ]
    assert (dest.host, dest.port) == ("127.0.0.2", 5070)


def test_without_record_route_the_bye_goes_to_the_contact_via_the_source() -> None:
    s = session(invite())
    bye, dest = bye_for(s, "10.0.0.5:5060")
    assert bye.uri == "sip:sbc@192.0.2.10:5060" and "Route" not in bye.headers
    assert dest == Address("udp", "127.0.0.2", 5060)
