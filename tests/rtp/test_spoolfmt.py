from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.spoolfmt import RECORD_HEADER, SpoolRecord, encode_record, iter_records


def sample() -> list[SpoolRecord]:
    return [
        SpoolRecord(1000.5, 65536 + 7, 2**32 + 160, 8, True, 0xDEADBEEF, b"\xd5" * 160),
        SpoolRecord(1000.52, 65536 + 8, 2**32 + 320, 101, False, 0xDEADBEEF, b"\x05\x8a\x03\x20"),
        SpoolRecord(1001.0, 3 * 65536, 3 * 2**32, 0, False, 1, b"", discontinuity=True),
    ]


def test_round_trip() -> None:
    recs = sample()
    data = b"".join(r.encode() for r in recs)
    assert RECORD_HEADER.size == 32
    assert list(iter_records(data)) == recs
    assert list(iter_records(bytearray(data))) == recs


def test_truncated_trailing_record_ignored() -> None:
    recs = sample()
    data = b"".join(r.encode() for r in recs)
    full = recs[:2]
    for cut in range(1, 33 + 4):
        got = list(iter_records(data[: len(data) - cut]))
        assert got == full if cut <= 32 else got == recs[:1] or got == full
    # a cut inside the first record's payload leaves nothing
    assert list(iter_records(data[:40])) == []
    assert list(iter_records(b"")) == []


def test_oversized_payload_truncated() -> None:
    data = encode_record(0.0, 1, 2, 8, 0, 3, b"x" * 70000)
    (rec,) = iter_records(data)
    assert len(rec.payload) == 0xFFFF


def test_to_rtp_rebuilds_the_packet() -> None:
    for rec in sample():
        pkt = RtpPacket.parse(rec.to_rtp())
        assert (pkt.payload_type, pkt.marker, pkt.ssrc, pkt.payload) == (
            rec.payload_type,
            rec.marker,
            rec.ssrc,
            rec.payload,
        )
        # The extended counters' low bits: 65536 + 7 -> 7, 2**32 + 160 -> 160.
        assert pkt.sequence_number == rec.ext_seq & 0xFFFF
        assert pkt.timestamp == rec.ext_ts & 0xFFFFFFFF
        assert (pkt.padding, pkt.extension, pkt.csrc) == (0, None, ())
    assert sample()[0].to_rtp()[:12] == bytes.fromhex("80 88 0007 000000a0 deadbeef")
