"""Hypothesis fuzzing of every parser of the media layer: only our errors, never a crash."""

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siprec_recorder.rtp.codecs import get_decoder, parse_telephone_event
from siprec_recorder.rtp.codecs.amr import to_storage_frames
from siprec_recorder.rtp.errors import RtcpParseError, RtpParseError
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket, is_rtcp
from siprec_recorder.rtp.render import LegMedia, render_call
from siprec_recorder.rtp.rtcp import parse_rtcp
from siprec_recorder.rtp.spoolfmt import SpoolRecord, iter_records

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

rtp_like = st.builds(
    lambda b0, b1, rest: bytes([b0, b1]) + rest,
    st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0x81, 0x8F, 0x40, 0x00, 0xFF]),
    st.integers(0, 255),
    st.binary(max_size=80),
)


@FUZZ
@given(st.one_of(st.binary(max_size=100), rtp_like))
def test_rtp_parse(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert RtpPacket.parse(p.serialize()) == p


@FUZZ
@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=64),
    st.booleans(),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    st.one_of(
        st.none(),
        st.tuples(
            st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))
        ),
    ),
    st.integers(0, 255),
)
def test_rtp_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrc: list[int],
    ext: tuple[int, bytes] | None,
    padding: int,
) -> None:
    p = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrc), ext, padding)
    assert RtpPacket.parse(p.serialize()) == p


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=120),
        st.builds(
            lambda c, pt, body: bytes([0x80 | c, pt]) + struct.pack("!H", len(body) // 4) + body,
            st.integers(0, 31),
            st.integers(200, 204),
            st.binary(max_size=100),
        ),
    )
)
def test_rtcp_parse(data: bytes) -> None:
    try:
        parse_rtcp(data)
    except RtcpParseError:
        pass


@FUZZ
@given(st.binary(max_size=400))
def test_iter_records(data: bytes) -> None:
    for rec in iter_records(data):
        assert isinstance(rec, SpoolRecord)


@FUZZ
@given(
    st.lists(
        st.builds(
            SpoolRecord,
            st.floats(0, 1e10),
            st.integers(0, 2**63),
            st.integers(0, 2**63),
            st.integers(0, 127),
            st.booleans(),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=50),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.integers(0, 60),
)
def test_iter_records_round_trip_and_truncation(recs: list[SpoolRecord], cut: int) -> None:
    data = b"".join(r.encode() for r in recs)
    assert list(iter_records(data)) == recs
    got = list(iter_records(data[: max(0, len(data) - cut)]))
    assert got == recs[: len(got)]


@FUZZ
@given(st.binary(max_size=12))
def test_telephone_event_parse(data: bytes) -> None:
    try:
        ev = parse_telephone_event(data)
    except RtpParseError:
        assert len(data) < 4
        return
    assert ev.serialize() == bytes([data[0], data[1] & 0xBF]) + data[2:4]  # R bit not kept


@FUZZ
@given(st.binary(max_size=80), st.booleans(), st.booleans())
def test_amr_depacketizer(data: bytes, wideband: bool, octet: bool) -> None:
    try:
        to_storage_frames(data, wideband=wideband, octet_aligned=octet)
    except RtpParseError:
        pass


@FUZZ
@given(
    st.lists(
        st.tuples(st.one_of(st.binary(max_size=60), rtp_like), st.floats(0, 100, allow_nan=False)),
        max_size=40,
    )
)
def test_leg_receiver_never_raises(datagrams: list[tuple[bytes, float]]) -> None:
    leg = LegReceiver("f", jitter_window=4)
    for data, now in datagrams:
        leg.receive(data, now)
        leg.receive_rtcp(data, now)
    out = leg.finish()
    recs = list(iter_records(out))
    assert leg.stats.as_dict()["packets_received"] >= len(recs) - 0
    # and whatever was spooled renders
    render_call(
        [LegMedia("f", recs, {8: ("PCMA", 8000, None), 9: ("G722", 8000, None)})],
        channels="mono",
        session_start=0.0,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=200), max_size=6),
    st.sampled_from(["G722", "G729", "OPUS", "AMR", "AMR-WB", "PCMU"]),
)
def test_decoders_survive_garbage(payloads: list[bytes], encoding: str) -> None:
    dec = get_decoder(encoding, 8000, None)
    assert dec is not None
    samples, lengths = dec.decode_run(payloads)
    assert samples.dtype == np.int16 and int(lengths.sum()) == len(samples)


def test_is_rtcp_total() -> None:
    for b in range(256):
        is_rtcp(bytes([0x80, b]))
