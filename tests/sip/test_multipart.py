"""Multipart bodies (RFC 2046, RFC 5621)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_recorder.sip import BodyPart, MultipartError, build_multipart, parse_message, split_body
from siprec_recorder.sip.headers import Headers

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
XML = b"<?xml version='1.0'?><recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"


def body(nl: bytes = b"\r\n", close: bool = True) -> bytes:
    out = b"preamble" + nl + b"--XyZ" + nl
    out += b"Content-Type: application/sdp" + nl + nl + SDP + nl
    out += b"--XyZ" + nl + b"Content-Type: application/rs-metadata+xml" + nl
    out += b"Content-Disposition: recording-session" + nl + b"Content-ID: <m1@x>" + nl + nl
    out += XML + nl
    if close:
        out += b"--XyZ--" + nl + b"epilogue" + nl
    return out


@pytest.mark.parametrize(
    "ctype", ["multipart/mixed;boundary=XyZ", 'multipart/mixed; charset=x; boundary="XyZ"']
)
@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
@pytest.mark.parametrize("close", [True, False])
def test_split(ctype: str, nl: bytes, close: bool) -> None:
    parts = split_body(ctype, body(nl, close))
    assert [p.media_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[1].body == XML
    assert parts[1].disposition == "recording-session"
    assert parts[1].headers.get("Content-ID") == "<m1@x>"
    if nl == b"\r\n":
        assert parts[0].body == SDP


def test_not_multipart() -> None:
    [part] = split_body("application/sdp", SDP)
    assert part.body == SDP and part.media_type == "application/sdp"
    [part] = split_body(None, b"")
    assert part.content_type == ""


def test_errors() -> None:
    with pytest.raises(MultipartError):
        split_body("multipart/mixed", body())
    with pytest.raises(MultipartError):
        split_body("multipart/mixed;boundary=nothere", body())


def test_roundtrip() -> None:
    parts = [
        BodyPart("application/sdp", Headers(), SDP),
        BodyPart(
            "application/rs-metadata+xml",
            Headers.of([("Content-Disposition", "recording-session")]),
            XML,
        ),
    ]
    ctype, data = build_multipart(parts)
    again = split_body(ctype, data)
    assert [(p.content_type, p.body) for p in again] == [(p.content_type, p.body) for p in parts]
    assert again[1].disposition == "recording-session"


def test_rfc4475_mpart01_binary_part() -> None:
    path = Path(__file__).parent.parent / "vectors" / "sip" / "rfc4475" / "mpart01.dat"
    m = parse_message(path.read_bytes())
    parts = split_body(m.content_type, m.body)
    assert [p.media_type for p in parts] == ["text/plain", "application/octet-stream"]
    assert b"\n" in parts[1].body and parts[1].headers.get("Content-Transfer-Encoding") == "binary"
