"""Bugs the interop harness found in other layers, each reduced to a socket-free test.

Each test is marked ``xfail(strict=True)`` while the bug is open, so that the suite stays
green for everyone else and the test turns red (XPASS) the moment the fix lands -- then
the marker is deleted and the test stays as a regression test (F1, F2 and F4 are fixed).
The report (docs/interop.md) lists the findings with their fixes.
"""

from __future__ import annotations

from siprec_recorder.phone import normalize_number, user_part
from siprec_recorder.sip.message import SipRequest, parse_message

# Metaswitch CFS, as in every metaswitch_* miarec scenario: the Contact lacks its '>'.
METASWITCH_INVITE = (
    b"INVITE sip:7603213214@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5070;rport;branch=z9hG4bK-1-1-0\r\n"
    b"From: <sip:7602922410@127.0.0.1:5070>;tag=1SIPpTag001\r\n"
    b"To: <sip:7603213214@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-1@127.0.0.1\r\n"
    b"CSeq: 832544241 INVITE\r\n"
    b"Contact: <sip:7602922410@127.0.0.1:5070;+sip.src\r\n"
    b"Max-Forwards: 70\r\n"
    b"Require: siprec\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_f1_metaswitch_contact_without_closing_bracket_is_accepted() -> None:
    msg = parse_message(METASWITCH_INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"


def test_f2_broadworks_hostless_sip_aor_has_a_number() -> None:
    # BroadWorks ACD / pause-resume metadata: <nameID aor="sip:8638254725">
    assert user_part("sip:8638254725") == "8638254725"
    assert normalize_number("sip:8638254725") is not None


def test_f4_stream_framer_keeps_messages_framed_before_an_error() -> None:
    from siprec_recorder.sip.errors import SipParseError
    from siprec_recorder.sip.parser import StreamFramer

    register = (
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.125;branch=z9hG4bKa\r\n"
        b"To: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: f4\r\n"
        b"CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    framer = StreamFramer()
    got: list[bytes] = []
    try:
        got += framer.feed(register + b"garbage without any length\r\n\r\n")
    except SipParseError:
        pass  # the error may come now or on the next feed, but the REGISTER must come out
    assert got == [register]
