import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.spoolfmt import (
    RECORD_HEADER,
    RecordTable,
    SpoolRecord,
    encode_record,
    iter_records,
)


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


# -- the columnar reader ---------------------------------------------------------------------


def _table_rows(table: RecordTable) -> list[SpoolRecord]:
    return [table.record(i) for i in range(len(table))]


def _check_table(table: RecordTable, expected: list[SpoolRecord]) -> None:
    """The table holds exactly ``expected``: rows, columns and payloads."""
    assert len(table) == len(expected)
    assert _table_rows(table) == expected
    assert list(table.records()) == expected
    assert table.arrival.dtype == np.float64 and table.ext_seq.dtype == np.int64
    assert table.arrival.tolist() == [r.arrival for r in expected]
    wrapped = [np.uint64(r.ext_seq).astype(np.int64) for r in expected]  # int64 columns
    assert table.ext_seq.tolist() == wrapped
    assert table.ext_ts.tolist() == [np.uint64(r.ext_ts).astype(np.int64) for r in expected]
    assert table.pt.tolist() == [r.payload_type for r in expected]
    assert table.ssrc.tolist() == [r.ssrc for r in expected]
    assert table.marker.tolist() == [r.marker for r in expected]
    assert table.discontinuity.tolist() == [r.discontinuity for r in expected]
    assert table.lengths.tolist() == [len(r.payload) for r in expected]
    assert [table.payload(i) for i in range(len(table))] == [r.payload for r in expected]
    assert table.payloads(range(len(table))) == [r.payload for r in expected]
    octets, lengths = table.payload_octets(np.arange(len(table)))
    assert octets == b"".join(r.payload for r in expected)
    assert lengths.tolist() == [len(r.payload) for r in expected]


def test_table_of_the_sample() -> None:
    recs = sample()
    data = b"".join(r.encode() for r in recs)
    for buf in (data, bytearray(data), memoryview(data)):
        _check_table(RecordTable.parse(buf), recs)
    _check_table(RecordTable.from_records(recs), recs)
    _check_table(RecordTable.parse(b""), [])
    _check_table(RecordTable.parse(data[:40]), [])


def test_table_of_one_payload_length_with_a_truncated_tail() -> None:
    recs = [
        SpoolRecord(1.0 + k, k, 160 * k, 8, k == 0, 7, bytes([k % 256]) * 160) for k in range(500)
    ]
    data = b"".join(r.encode() for r in recs)
    tail = SpoolRecord(9.0, 9, 9, 101, False, 7, b"\x01\x02\x03\x04").encode()
    _check_table(RecordTable.parse(data), recs)
    _check_table(
        RecordTable.parse(data + tail),
        [*recs, SpoolRecord(9.0, 9, 9, 101, False, 7, b"\x01\x02\x03\x04")],
    )
    _check_table(RecordTable.parse(data + tail[:-1]), recs)
    _check_table(RecordTable.parse(data[:-1]), recs[:-1])


_LENGTHS = st.one_of(st.sampled_from([0, 4, 160]), st.integers(0, 400))


@st.composite
def _spools(draw: st.DrawFn) -> list[SpoolRecord]:
    """Runs of records of one payload length (as G.711 with DTMF, CN, codec changes)."""
    runs = draw(st.lists(st.tuples(_LENGTHS, st.integers(1, 70)), max_size=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    recs: list[SpoolRecord] = []
    for length, count in runs:
        for _ in range(count):
            recs.append(
                SpoolRecord(
                    float(rng.uniform(0, 2e9)),
                    int(rng.integers(0, 2**64, dtype=np.uint64)),
                    int(rng.integers(0, 2**64, dtype=np.uint64)),
                    int(rng.integers(0, 128)),
                    bool(rng.integers(0, 2)),
                    int(rng.integers(0, 2**32)),
                    rng.bytes(length),
                    bool(rng.integers(0, 2)),
                )
            )
    return recs


@settings(max_examples=300, deadline=None)
@given(_spools(), st.integers(0, 500), st.data())
def test_table_reads_what_iter_records_reads(
    recs: list[SpoolRecord], cut: int, data: st.DataObject
) -> None:
    spool = b"".join(r.encode() for r in recs)
    spool = spool[: max(0, len(spool) - cut)]  # a crash cut the last record short, or not
    expected = list(iter_records(spool))
    table = RecordTable.parse(spool)
    _check_table(table, expected)
    # any subset of records, in any order: the payloads concatenated
    idx = data.draw(st.lists(st.integers(0, max(0, len(expected) - 1)), max_size=len(expected)))
    idx = idx if expected else []
    octets, lengths = table.payload_octets(np.array(idx, np.intp))
    assert octets == b"".join(expected[i].payload for i in idx)
    assert lengths.tolist() == [len(expected[i].payload) for i in idx]
    ordered = sorted(set(idx))
    octets, _ = table.payload_octets(np.array(ordered, np.intp))
    assert octets == b"".join(expected[i].payload for i in ordered)


def test_the_live_receiver_does_not_load_numpy() -> None:
    code = "import sys, siprec_recorder.rtp.leg; assert 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
