"""URIs, name-addrs, Via, CSeq, Headers, make_response and the dialog helper."""

from __future__ import annotations

import pytest

from siprec_recorder.sip import (
    CSeq,
    Dialog,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    TelUri,
    Via,
    make_response,
    parse_message,
    parse_uri,
)
from siprec_recorder.sip.uri import AbsoluteUri

INVITE = (
    b"INVITE sip:srs@rec.example;transport=tcp SIP/2.0\r\n"
    b"v: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKa;received=192.0.2.9,"
    b" SIP/2.0/UDP p.example\r\n"
    b'f: "Caller, Inc." <sip:+3247000001@sbc.example;user=phone>;tag=ft\r\n'
    b"t: <tel:+3222222222;phone-context=example>\r\n"
    b"i: call-7@sbc\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"m: <sip:sbc@192.0.2.9:5061;transport=tcp>\r\n"
    b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
    b"k: siprec\r\n"
    b"c: application/sdp\r\n"
    b"l: 5\r\n\r\nhello"
)


def test_uri_kinds() -> None:
    uri = parse_uri("sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x")
    assert uri == SipUri(
        "sips",
        "alice",
        "pw",
        "[2001:db8::1]",
        5061,
        (("transport", "tls"), ("lr", None)),
        (("subject", "x"),),
    )
    assert uri.serialize() == "sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x"
    tel = parse_uri("tel:+32-2-555;phone-context=x")
    assert (
        isinstance(tel, TelUri) and tel.number == "+32-2-555" and tel.param("phone-context") == "x"
    )
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "service:sos")
    for bad in ("sip:", "sip:host:99999", "sip:a@b c", "nocolon", "sip:[::1", "sip:ho$t"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_name_addr() -> None:
    na = NameAddr.parse('"A \\"B\\"" <sip:a@b>;tag=1;x', "From")
    assert na.display == 'A "B"' and na.tag == "1" and na.param("x") == ""
    assert NameAddr.parse(na.serialize()) == na
    plain = NameAddr.parse("sip:a@b;tag=9")
    assert plain.tag == "9" and isinstance(plain.uri, SipUri) and plain.uri.params == ()
    assert NameAddr.parse("Bob <sip:b@c>").display == "Bob"
    # tolerated: the closing '>' missing at the very end (Metaswitch CFS, interop F1)
    tolerant = NameAddr.parse("<sip:7602922410@127.0.0.1:5070;+sip.src", "Contact")
    assert isinstance(tolerant.uri, SipUri) and tolerant.uri.params == (("+sip.src", None),)
    with pytest.raises(SipParseError):
        NameAddr.parse("<sip:a@b ;tag=1")


def test_via_and_cseq() -> None:
    via = Via.parse("SIP / 2.0 / udp 192.0.2.1:5060 ; branch = z9hG4bKx ; rport")
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "UDP",
        "192.0.2.1",
        5060,
        "z9hG4bKx",
        "",
    )
    assert (
        via.with_param("rport", "1234").serialize()
        == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport=1234"
    )
    assert CSeq.parse("  42   BYE ") == CSeq(42, "BYE")
    with pytest.raises(SipParseError):
        CSeq.parse("2147483648 BYE")


def test_compact_headers_and_accessors() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, SipRequest)
    assert m.call_id == "call-7@sbc" and m.cseq == (7, "INVITE")
    assert m.from_tag == "ft" and m.to_tag is None and m.branch == "z9hG4bKa"
    assert m.from_addr.display == "Caller, Inc."
    assert isinstance(m.to_addr.uri, TelUri)
    assert m.content_type == "application/sdp" and m.body == b"hello"
    assert [v.host for v in m.vias] == ["[2001:db8::1]", "p.example"]
    assert m.headers.get_all("Record-Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert m.headers.get("supported") == "siprec"
    assert [k for k, _ in m.headers.items()][:3] == ["Via", "From", "To"]
    h = m.headers.with_("Subject", "x").without("Supported")
    assert h.get("Subject") == "x" and "Supported" not in h
    assert parse_message(m.serialize()) == m.__class__(
        m.method, m.uri, m.headers.with_("Content-Length", "5"), m.body
    )


def test_make_response() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, SipRequest)
    r = make_response(
        m, 200, to_tag="tt", body=b"v=0\r\n", content_type="application/sdp", server="srs"
    )
    assert (r.status, r.reason) == (200, "OK")
    assert r.headers.get_lines("Via") == m.headers.get_lines("Via")
    assert (
        r.to_tag == "tt"
        and r.from_tag == "ft"
        and r.call_id == m.call_id
        and r.cseq == (7, "INVITE")
    )
    assert r.headers.get_all("Record-Route") == m.headers.get_all("Record-Route")
    assert r.headers.get("Server") == "srs"
    wire = parse_message(r.serialize())
    assert isinstance(wire, SipResponse) and wire.headers.get("Content-Length") == "5"
    trying = make_response(m, 100)
    assert trying.to_tag is None and "Record-Route" not in trying.headers
    random_tag = make_response(m, 486)
    assert random_tag.to_tag and random_tag.reason == "Busy Here"


def test_line_folding_and_lf_only() -> None:
    data = INVITE.replace(b"\r\n", b"\n").replace(b"k: siprec\n", b"Subject: one\n two\n\tthree\n")
    m = parse_message(data)
    assert m.headers.get("Subject") == "one two three"


def test_dialog_bye() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, SipRequest)
    dialog = Dialog.from_invite(m, "ourtag")
    assert dialog.remote_target == "sip:sbc@192.0.2.9:5061;transport=tcp"
    assert dialog.route_set == ("<sip:p1.example;lr>", "<sip:p2.example;lr>")
    dialog2, bye = dialog.request("BYE")
    assert dialog2.local_cseq == dialog.local_cseq + 1
    assert bye.method == "BYE" and bye.uri == dialog.remote_target
    assert bye.cseq == (dialog2.local_cseq, "BYE")
    assert bye.from_tag == "ourtag" and bye.to_tag == "ft" and bye.call_id == "call-7@sbc"
    assert bye.headers.get_all("Route") == list(dialog.route_set)
