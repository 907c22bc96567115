"""The chunk path (rtp/chunk.py) gives byte for byte what LegReceiver.receive gives."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.rtp.chunk import PacketChunk, deliver_chunk
from siprec_recorder.rtp.leg import LegReceiver

WIDTH = 256


class _FullPathOnly(LegReceiver):
    FAST_PATH = False


class _Collect:
    """A sink that is not a leg: takes datagrams one by one."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, float]] = []

    def receive(self, datagram: bytes, now_wall: float) -> None:
        self.got.append((datagram, now_wall))


def _chunk(datagrams: list[tuple[bytes, float]]) -> PacketChunk:
    rows = np.zeros((len(datagrams) + 3, WIDTH), dtype=np.uint8)  # spare rows, as the pump has
    for i, (data, _at) in enumerate(datagrams):
        rows[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    return PacketChunk(
        rows,
        np.array([len(d) for d, _ in datagrams], dtype=np.int64),
        np.array([at for _, at in datagrams], dtype=np.float64),
    )


_EVENT = st.one_of(
    st.tuples(st.just("next"), st.integers(1, 6)),
    st.tuples(st.just("skip"), st.integers(1, 5)),
    st.tuples(st.just("back"), st.integers(1, 8)),
    st.tuples(st.just("ssrc"), st.integers(0, 2)),
    st.tuples(st.just("jump"), st.integers(3001, 60000)),
    st.tuples(st.just("pt"), st.sampled_from([0, 8, 13, 72, 101])),
    st.tuples(st.just("size"), st.sampled_from([0, 1, 20, 160])),
    st.tuples(st.just("tsback"), st.integers(1, 1 << 31)),
    st.tuples(st.just("odd"), st.sampled_from([b"", b"\x80", b"\x90" + bytes(20), b"\xa0" * 13])),
)


def _stream(events: list[tuple[str, object]], seq0: int, ts0: int) -> list[bytes]:
    """One leg's datagrams in arrival order."""
    seq, ssrcs, ssrc, pt, size, ts_off = seq0, [0x1111, 0x2222, 0x1111], 0x1111, 8, 160, ts0
    out: list[bytes] = []

    def packet(s: int) -> bytes:
        b1 = pt | (0x80 if s % 7 == 0 else 0)
        ts = (ts_off + 160 * s) & 0xFFFFFFFF
        return struct.pack("!BBHII", 0x80, b1, s & 0xFFFF, ts, ssrc) + bytes([s & 0xFF] * size)

    for kind, arg in events:
        if kind == "next":
            for _ in range(int(arg)):  # type: ignore[call-overload]
                out.append(packet(seq))
                seq += 1
        elif kind in ("skip", "jump"):
            seq += int(arg)  # type: ignore[call-overload]
        elif kind == "back":
            out.append(packet(seq - int(arg)))  # type: ignore[call-overload]
        elif kind == "ssrc":
            ssrc = ssrcs[int(arg)]  # type: ignore[call-overload]
        elif kind == "pt":
            pt = int(arg)  # type: ignore[call-overload]
        elif kind == "size":
            size = int(arg)  # type: ignore[call-overload]
        elif kind == "tsback":
            ts_off -= int(arg)  # type: ignore[call-overload]
        else:
            assert isinstance(arg, bytes)
            out.append(arg)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_EVENT, max_size=40), st.integers(0, 0xFFFF), st.integers(0, 2**32)),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(1, 7), min_size=1, max_size=30),
    st.booleans(),
)
def test_chunks_match_packet_by_packet(
    legs: list[tuple[list[tuple[str, object]], int, int]], reads: list[int], other_sink: bool
) -> None:
    streams = [_stream(events, seq0, ts0) for events, seq0, ts0 in legs]
    chunked = [LegReceiver(str(i)) for i in range(len(streams))]
    single = [_FullPathOnly(str(i)) for i in range(len(streams))]
    sink, expected = _Collect(), []
    now = 1_000.0
    pos = [0] * len(streams)
    tick = 0
    while any(p < len(s) for p, s in zip(pos, streams, strict=True)):
        # One round: each leg's socket holds the next few datagrams (as many as `reads` says).
        datagrams: list[tuple[bytes, float]] = []
        segments = []
        for i, stream in enumerate(streams):
            n = min(reads[(tick + i) % len(reads)], len(stream) - pos[i])
            if n == 0:
                continue
            start = len(datagrams)
            for data in stream[pos[i] : pos[i] + n]:
                now += 0.0201
                datagrams.append((data, now))
                single[i].receive(data, now)
            pos[i] += n
            segments.append((chunked[i].receive, chunked[i], start, n))
            if other_sink:
                start = len(datagrams)
                extra = [(b"\x80\x08" + bytes([tick % 256]) * 20, now), (b"", now)]
                datagrams.extend(extra)
                expected.extend(extra)
                segments.append((sink.receive, None, start, 2))
        tick += 1
        deliver_chunk(_chunk(datagrams), segments)
        if tick % 5 == 0:
            now += 0.4
            for leg in (*chunked, *single):
                leg.poll(now)
    for a, b in zip(chunked, single, strict=True):
        assert a.take_spool_bytes() == b.take_spool_bytes()
        assert a.finish() == b.finish()
        assert a.stats.as_dict() == b.stats.as_dict()
        assert (a.stats.jitter_s, a.stats.longest_gap_s) == (
            b.stats.jitter_s,
            b.stats.longest_gap_s,
        )
        assert (a.stats.first_packet_at, a.stats.last_packet_at) == (
            b.stats.first_packet_at,
            b.stats.last_packet_at,
        )
        assert a.stats.bytes_received == b.stats.bytes_received
        assert a.stats.codec == b.stats.codec
    assert sink.got == expected


def _plain(count: int, *, seq0: int = 0, ssrc: int = 7, size: int = 160) -> list[bytes]:
    return [
        struct.pack("!BBHII", 0x80, 8, (seq0 + s) & 0xFFFF, 160 * (seq0 + s), ssrc)
        + bytes([s]) * size
        for s in range(count)
    ]


def test_a_plain_stream_is_claimed_as_runs() -> None:
    """After its first packet, a plain stream goes through claim_run, a segment at a time."""
    leg = LegReceiver("1")
    packets = _plain(21)
    leg.receive(packets[0], 1.0)
    claimed = []
    original = leg.claim_run

    def spy(*args: int) -> object:
        got = original(*args)
        claimed.append(got is not None)
        return got

    leg.claim_run = spy  # type: ignore[method-assign]
    for first in range(1, 21, 5):
        datagrams = [(p, 1.0 + i / 50) for i, p in enumerate(packets[first : first + 5], first)]
        deliver_chunk(_chunk(datagrams), [(leg.receive, leg, 0, 5)])
    assert claimed == [True] * 4
    assert leg.stats.packets_received == 21 and leg.stats.packets_lost == 0
    assert len(leg.take_spool_bytes()) == 21 * (32 + 160)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda p: p[:1] + bytes([9]) + p[2:], id="payload type"),
        pytest.param(lambda p: p[:8] + b"\x00\x00\x00\x08" + p[12:], id="SSRC"),
        pytest.param(lambda p: p + b"\x00", id="payload size"),
        pytest.param(lambda p: b"\x90" + p[1:], id="extension bit"),
        pytest.param(lambda p: p[:4] + b"\x00\x00\x00\x00" + p[8:], id="timestamp back"),
        pytest.param(lambda p: p[:2] + b"\x00\x00" + p[4:], id="sequence number"),
    ],
)
def test_a_break_inside_a_segment_takes_the_single_path(bad: object) -> None:
    leg, reference = LegReceiver("1"), _FullPathOnly("1")
    packets = _plain(10)
    packets[7] = bad(packets[7])  # type: ignore[operator]
    datagrams = [(p, 1.0 + i / 50) for i, p in enumerate(packets)]
    for data, at in datagrams[:5]:
        leg.receive(data, at)
    deliver_chunk(_chunk(datagrams[5:]), [(leg.receive, leg, 0, 5)])
    for data, at in datagrams:
        reference.receive(data, at)
    assert leg.finish() == reference.finish()
    assert leg.stats.as_dict() == reference.stats.as_dict()
