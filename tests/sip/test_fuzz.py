"""Hypothesis fuzzing: only our own error types may escape the parsers."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprec_recorder.errors import RemoteProtocolError
from siprec_recorder.sip import (
    Address,
    SessionDescription,
    SipCore,
    StreamFramer,
    parse_message,
    split_body,
)

VECTORS = sorted((Path(__file__).parent.parent / "vectors" / "sip").glob("*/*.dat"))
SEEDS = [p.read_bytes() for p in VECTORS]
SDP_SEED = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\na=ptime:20\r\na=label:1\r\na=sendonly\r\n"
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data) - 1))
        if op == 0:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            del data[i : i + draw(st.integers(1, 20))]
        elif op == 2:
            data[i:i] = draw(
                st.sampled_from([b"\r\n", b" ", b";", b",", b":", b"<", b'"', b"\x00", b"[", b"%"])
            )
        else:
            data = data[:i]
    return bytes(data)


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(mutated(SEEDS), st.binary(max_size=400)))
def test_parse_message(data: bytes) -> None:
    try:
        parse_message(data)
    except RemoteProtocolError:
        pass


@FUZZ
@given(mutated(SEEDS))
def test_core_receive_never_raises(data: bytes) -> None:
    core = SipCore()
    core.receive(data, Address("udp", "192.0.2.1", 5060), 0.0)
    while core.next_event() is not None:
        pass
    core.datagrams_to_send()


@FUZZ
@given(st.lists(st.one_of(mutated(SEEDS), st.binary(max_size=100)), max_size=4))
def test_stream_framer(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_message_size=4000)
    try:
        for chunk in chunks:
            for message in framer.feed(chunk):
                assert len(message) <= 4000
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.text(max_size=40), mutated(SEEDS))
def test_split_body(ctype: str, body: bytes) -> None:
    for content_type in (
        ctype,
        "multipart/mixed;boundary=simple-boundary",
        'multipart/mixed;boundary="' + ctype + '"',
    ):
        try:
            split_body(content_type, body)
        except RemoteProtocolError:
            pass


@FUZZ
@given(st.one_of(mutated([SDP_SEED]), st.binary(max_size=200)))
def test_sdp_parse(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except RemoteProtocolError:
        return
    for m in sdp.media:
        m.rtpmaps, m.fmtp, m.crypto, m.ptime, m.label, m.direction  # noqa: B018
    SessionDescription.parse(sdp.serialize())
