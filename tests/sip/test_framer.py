"""StreamFramer: Content-Length framing of TCP/TLS streams, split at every byte offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_recorder.sip import MessageTooLarge, SipParseError, StreamFramer, parse_message

RFC4475 = Path(__file__).parent.parent / "vectors" / "sip" / "rfc4475"
M1 = (RFC4475 / "wsinv.dat").read_bytes()  # Content-Length 150, body present
M2 = (RFC4475 / "esc01.dat").read_bytes()
M3 = (RFC4475 / "intmeth.dat").read_bytes()  # Content-Length 0, NUL/BEL in a header


def test_several_messages_in_one_segment_with_keepalives() -> None:
    framer = StreamFramer()
    out = framer.feed(b"\r\n\r\n" + M1 + b"\r\n" + M2 + M3)
    assert out == [M1, M2, M3]
    assert framer.buffered == 0


def test_split_at_every_offset() -> None:
    stream = b"\r\n" + M1 + M2 + b"\r\n\r\n" + M3
    for cut in range(len(stream) + 1):
        framer = StreamFramer()
        out = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert out == [M1, M2, M3], cut
        assert framer.buffered == 0


def test_split_at_every_pair_of_offsets_small() -> None:
    stream = M3 + M3
    for a in range(0, len(stream) + 1, 17):
        for b in range(a, len(stream) + 1, 13):
            framer = StreamFramer()
            out = framer.feed(stream[:a]) + framer.feed(stream[a:b]) + framer.feed(stream[b:])
            assert out == [M3, M3], (a, b)


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(M3 + M1)):
        out += framer.feed((M3 + M1)[i : i + 1])
    assert out == [M3, M1]
    for message in out:
        parse_message(message)


def test_missing_content_length_is_fatal() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError) as info:
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n")
    assert info.value.message == "missing Content-Length on a stream transport"


def test_bad_content_length_is_fatal() -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n")
    assert info.value.message == "invalid Content-Length"


def test_size_cap() -> None:
    framer = StreamFramer(max_message_size=200)
    with pytest.raises(MessageTooLarge):
        framer.feed(b"X" * 201)
    with pytest.raises(MessageTooLarge):
        StreamFramer(max_message_size=1200).feed(M1.replace(b": 150", b": 9999"))
