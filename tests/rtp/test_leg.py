import numpy as np

from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.spoolfmt import iter_records

from ._synth import sine, stream_packets


def pkt(
    seq: int,
    ts: int,
    ssrc: int = 7,
    pt: int = 8,
    payload: bytes = b"\xd5" * 160,
    marker: bool = False,
) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker).serialize()


def test_plain_stream_to_records() -> None:
    leg = LegReceiver("1")
    packets = list(stream_packets(sine(440, 2.0), start_wall=100.0, seq0=65530, ts0=2**32 - 480))
    for wall, data in packets:
        leg.receive(data, wall)
    recs = list(iter_records(leg.take_spool_bytes() + leg.finish()))
    assert len(recs) == 100
    seqs = [r.ext_seq for r in recs]
    assert seqs == list(range(seqs[0], seqs[0] + 100))  # extended across the 65535 -> 0 wrap
    assert all(b.ext_ts - a.ext_ts == 160 for a, b in zip(recs, recs[1:], strict=False))
    assert recs[0].marker and not recs[1].marker
    assert recs[0].arrival == 100.0
    assert recs[0].payload == RtpPacket.parse(packets[0][1]).payload
    s = leg.stats.as_dict()
    assert s["packets_received"] == 100 and s["packets_expected"] == 100
    assert s["packets_lost"] == 0 and s["jitter_ms"] == 0.0
    assert s["longest_gap_ms"] == 20.0
    assert s["mos"] > 4.3
    assert leg.last_packet_at == packets[-1][0]
    assert leg.stats.codec == "PCMA"


def test_take_spool_bytes_drains() -> None:
    leg = LegReceiver("1")
    leg.receive(pkt(1, 0), 1.0)
    first = leg.take_spool_bytes()
    assert len(list(iter_records(first))) == 1
    assert leg.take_spool_bytes() == b""
    leg.receive(pkt(2, 160), 1.02)
    assert len(list(iter_records(leg.take_spool_bytes()))) == 1


def test_reorder_duplicate_loss_late() -> None:
    leg = LegReceiver("1", jitter_window=4)
    order = [1, 3, 2, 2, 4, 6, 7, 8, 9, 5]  # 5 arrives after its slot was given up
    for i, s in enumerate(order):
        leg.receive(pkt(s, s * 160), 10.0 + i * 0.02)
    recs = list(iter_records(leg.finish()))
    assert [r.ext_seq & 0xFFFF for r in recs] == [1, 2, 3, 4, 6, 7, 8, 9]
    st = leg.stats.as_dict()
    assert st["packets_duplicate"] == 1
    assert st["packets_late"] == 1
    assert st["packets_received"] == 9
    assert st["packets_expected"] == 9
    assert st["packets_lost"] == 0  # RFC 3550: the late packet was received


def test_ssrc_change_is_a_new_context() -> None:
    leg = LegReceiver("1")
    for i in range(10):
        leg.receive(pkt(100 + i, 1000 + 160 * i, ssrc=1), 1.0 + 0.02 * i)
    for i in range(10):
        leg.receive(pkt(40000 + i, 7 + 160 * i, ssrc=2), 2.0 + 0.02 * i)
    # a stray late packet of the old source does not switch back
    leg.receive(pkt(110, 1000 + 1600, ssrc=1), 2.3)
    recs = list(iter_records(leg.finish()))
    assert len(recs) == 20
    assert [r.discontinuity for r in recs].count(True) == 1
    assert recs[10].discontinuity and recs[10].ssrc == 2
    assert all(b.ext_seq > a.ext_seq for a, b in zip(recs, recs[1:], strict=False))
    assert recs[10].ext_ts > recs[9].ext_ts
    st = leg.stats.as_dict()
    assert st["ssrc_changes"] == 1
    assert st["packets_expected"] == 20 and st["packets_lost"] == 0
    assert st["packets_late"] == 1


def test_sequence_restart_needs_confirmation() -> None:
    leg = LegReceiver("1")
    for i in range(5):
        leg.receive(pkt(10 + i, 160 * i), 1.0 + 0.02 * i)
    leg.receive(pkt(30000, 0), 1.2)  # lone jump: dropped as bad
    leg.receive(pkt(15, 800), 1.22)
    leg.receive(pkt(50000, 0), 5.0)  # a restart ...
    leg.receive(pkt(50001, 160), 5.02)  # ... confirmed by the next packet
    leg.receive(pkt(50002, 320), 5.04)
    recs = list(iter_records(leg.finish()))
    assert [r.ext_seq & 0xFFFF for r in recs] == [10, 11, 12, 13, 14, 15, 50001, 50002]
    assert recs[6].discontinuity
    assert leg.stats.bad_packets == 2


def test_bad_input_never_raises() -> None:
    leg = LegReceiver("1")
    for data in (
        b"",
        b"\x80",
        bytes(12),
        b"\x40" + bytes(20),
        b"\x90\x08" + bytes(12),
        b"\xa0\x08" + bytes(9) + b"\x00",
        b"\x8f\x08" + bytes(10),
    ):
        leg.receive(data, 1.0)
    assert leg.stats.bad_packets == 7
    assert leg.finish() == b""


def test_rtcp_on_rtp_port_is_routed() -> None:
    leg = LegReceiver("1")
    sr = bytes.fromhex("80c80006") + (7).to_bytes(4, "big") + bytes(20)
    leg.receive(sr, 1.0)
    leg.receive(b"\x80\xc9\x00\x05" + bytes(4), 1.0)  # truncated RR
    assert leg.stats.rtcp_packets == 1
    assert leg.stats.bad_packets == 1
    assert leg.stats.rtcp_reports["last_sr"]["ssrc"] == 7
    assert leg.finish() == b""


def test_telephone_events_are_spooled() -> None:
    leg = LegReceiver("1", rtpmaps={101: ("telephone-event", 8000, "0-15")})
    leg.receive(pkt(1, 0, payload=b"\xd5" * 160), 1.0)
    leg.receive(pkt(2, 160, pt=101, payload=b"\x05\x0a\x00\xa0", marker=True), 1.02)
    leg.receive(pkt(3, 160, pt=101, payload=b"\x05\x8a\x03\x20"), 1.04)
    recs = list(iter_records(leg.finish()))
    assert [r.payload_type for r in recs] == [8, 101, 101]
    assert leg.stats.jitter_s == 0.0  # events do not disturb the jitter estimate


def test_payload_is_copied_out_of_the_datagram() -> None:
    leg = LegReceiver("1")
    data = bytearray(pkt(1, 0, payload=b"\x11" * 160))
    leg.receive(bytes(data), 1.0)
    data[20:30] = b"\x00" * 10
    (rec,) = iter_records(leg.finish())
    assert rec.payload == b"\x11" * 160


def test_packets_after_finish_ignored() -> None:
    leg = LegReceiver("1")
    leg.receive(pkt(1, 0), 1.0)
    assert len(list(iter_records(leg.finish()))) == 1
    leg.receive(pkt(2, 160), 1.02)
    assert leg.take_spool_bytes() == b""


def test_jitter_estimate() -> None:
    leg = LegReceiver("1")
    rng = np.random.default_rng(1)
    for wall, data in stream_packets(
        sine(300, 20.0), start_wall=0.0, jitter=lambda i: float(rng.uniform(0, 0.01))
    ):
        leg.receive(data, wall)
    leg.finish()
    # uniform(0, 10 ms) delays: E|D| = 10/3 ms
    assert 2.0 < leg.stats.as_dict()["jitter_ms"] < 5.0


def test_datagram_objects_are_not_retained() -> None:
    import sys

    leg = LegReceiver("1", jitter_window=8)
    datagrams = [pkt(s, s * 160) for s in (1, 3, 4, 2, 5)]  # some wait in the jitter buffer
    before = [sys.getrefcount(d) for d in datagrams]
    for i in range(len(datagrams)):
        leg.receive(datagrams[i], 1.0 + 0.02 * i)
    assert [sys.getrefcount(d) for d in datagrams] == before
    leg.finish()


# -- the fast path of receive() is the full path, faster -------------------------------

import struct  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class _FullPathOnly(LegReceiver):
    FAST_PATH = False


_EVENT = st.one_of(
    st.tuples(st.just("next"), st.integers(0, 3)),  # in order, 0-3 packets
    st.tuples(st.just("skip"), st.integers(1, 5)),  # a gap
    st.tuples(st.just("back"), st.integers(1, 8)),  # an old one (late or duplicate)
    st.tuples(st.just("ssrc"), st.integers(0, 2)),  # switch SSRC (2 = back to the first)
    st.tuples(st.just("jump"), st.integers(3001, 60000)),  # a big sequence jump
    st.tuples(st.just("pt"), st.sampled_from([0, 8, 13, 72, 101])),  # payload type change
    st.tuples(st.just("odd"), st.sampled_from([b"", b"\x80", b"\x90" + bytes(20), b"\xa0" * 13])),
    st.tuples(st.just("poll"), st.integers(0, 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT, max_size=60), st.integers(0, 0xFFFF))
def test_fast_path_matches_the_full_path(events: list[tuple[str, object]], seq0: int) -> None:
    fast, full = LegReceiver("1"), _FullPathOnly("1")
    seq, ssrcs, ssrc, pt, now = seq0, [0x1111, 0x2222, 0x1111], 0x1111, 8, 100.0
    datagrams: list[bytes | tuple[str, float]] = []

    def packet(s: int) -> bytes:
        b1 = pt | (0x80 if s % 7 == 0 else 0)  # a marker now and then
        header = struct.pack("!BBHII", 0x80, b1, s & 0xFFFF, (160 * s) & 0xFFFFFFFF, ssrc)
        return header + bytes([s & 0xFF] * 160)

    for kind, arg in events:
        assert isinstance(arg, int | bytes)
        if kind == "next":
            for _ in range(int(arg)):
                datagrams.append(packet(seq))
                seq += 1
        elif kind == "skip":
            seq += int(arg)
        elif kind == "back":
            datagrams.append(packet(seq - int(arg)))
        elif kind == "ssrc":
            ssrc = ssrcs[int(arg)]
        elif kind == "jump":
            seq += int(arg)
        elif kind == "pt":
            pt = int(arg)
        elif kind == "odd":
            assert isinstance(arg, bytes)
            datagrams.append(arg)
        elif kind == "poll":
            datagrams.append(("poll", 0.5 * (int(arg) + 1)))
    for item in datagrams:
        now += 0.02
        if isinstance(item, tuple):
            now += item[1]
            for leg in (fast, full):
                leg.poll(now)
        else:
            for leg in (fast, full):
                leg.receive(item, now)
    assert fast.take_spool_bytes() == full.take_spool_bytes()
    assert fast.finish() == full.finish()
    assert fast.stats.as_dict() == full.stats.as_dict()
    assert fast.stats.codec == full.stats.codec
    assert fast.stats.bytes_received == full.stats.bytes_received


def test_fast_path_is_taken_for_a_plain_stream() -> None:
    leg = LegReceiver("1")
    for s in range(5):
        leg.receive(struct.pack("!BBHII", 0x80, 8, s, 160 * s, 7) + bytes(160), 1.0 + s / 50)
        assert leg._fast == (s >= 0)
    leg.finish()
    assert not leg._fast
