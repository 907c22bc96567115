"""The spool record format: released RTP packets of one leg, as appended to disk.

Theory of operation
-------------------
A leg's spool is a plain concatenation of records, written in the order the jitter buffer
released them (in sequence order within a sequence context). Each record is a fixed
32-octet little-endian header followed by the RTP payload::

    arrival   float64   wall-clock seconds at which the packet arrived
    ext_seq   uint64    extended sequence number (see seq.py)
    ext_ts    uint64    extended RTP timestamp
    pt        uint8     payload type
    flags     uint8     bit 0: RTP marker; bit 1: first record of a new sequence context
                        (SSRC change or stream restart: the renderer re-anchors there)
    ssrc      uint32
    length    uint16    payload length
    payload   length octets

The file is appended to and fsync'd about once a second, so a crash can leave one record
cut short at the end: :func:`iter_records` stops quietly at a truncated trailing record.
Records carry only copies of payload bytes, never references to received datagrams.

Two readers give the same records. :func:`iter_records` yields one :class:`SpoolRecord` per
packet, for tools and tests. :class:`RecordTable` (the renderer's) holds a whole leg as numpy
columns over the spool bytes: it finds the record offsets by testing the hypothesis that the
records ahead all have the payload length of the current one (G.711 at a fixed ptime: every
record) against the strided length fields, and walks the length fields one by one only where
lengths vary, so no Python object is made per packet. numpy is imported where the table is
built: the live receiver writes records with this module and never loads it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "FLAG_DISCONTINUITY",
    "FLAG_MARKER",
    "RECORD_HEADER",
    "RecordTable",
    "SpoolRecord",
    "encode_record",
    "iter_records",
]

RECORD_HEADER = struct.Struct("<dQQBBIH")
FLAG_MARKER = 0x01
FLAG_DISCONTINUITY = 0x02
_MASK64 = (1 << 64) - 1
_RTP_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled RTP packet (payload copied out of the datagram)."""

    arrival: float
    ext_seq: int
    ext_ts: int
    payload_type: int
    marker: bool
    ssrc: int
    payload: bytes
    discontinuity: bool = False

    def encode(self) -> bytes:
        """This record in spool format."""
        flags = (FLAG_MARKER if self.marker else 0) | (
            FLAG_DISCONTINUITY if self.discontinuity else 0
        )
        return encode_record(
            self.arrival,
            self.ext_seq,
            self.ext_ts,
            self.payload_type,
            flags,
            self.ssrc,
            self.payload,
        )

    def to_rtp(self) -> bytes:
        """The RTP packet rebuilt from the record (RFC 3550 section 5.1).

        The header is the plain 12 octets: CSRCs, header extensions and padding are not
        spooled; sequence number and timestamp are the low 16 and 32 bits of the extended
        counters.
        """
        return (
            _RTP_HEADER.pack(
                0x80,
                (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
                self.ext_seq & 0xFFFF,
                self.ext_ts & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
            + self.payload
        )


def encode_record(
    arrival: float,
    ext_seq: int,
    ext_ts: int,
    payload_type: int,
    flags: int,
    ssrc: int,
    payload: bytes,
) -> bytes:
    """Encode one record; payloads longer than 65535 octets are truncated to fit."""
    if len(payload) > 0xFFFF:
        payload = payload[:0xFFFF]
    return (
        RECORD_HEADER.pack(
            arrival,
            ext_seq & _MASK64,
            ext_ts & _MASK64,
            payload_type & 0x7F,
            flags & 0xFF,
            ssrc & 0xFFFFFFFF,
            len(payload),
        )
        + payload
    )


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[SpoolRecord]:
    """Yield the records in ``data``; a truncated trailing record is ignored."""
    buf = bytes(data)
    n = len(buf)
    pos = 0
    while pos + RECORD_HEADER.size <= n:
        found = _record_at(buf, pos)
        if found is None:
            return
        record, pos = found
        yield record


def _record_at(buf: bytes, pos: int) -> tuple[SpoolRecord, int] | None:
    """The record whose header is at ``pos`` and where the next one starts (None: cut short)."""
    arrival, ext_seq, ext_ts, pt, flags, ssrc, length = RECORD_HEADER.unpack_from(buf, pos)
    start = pos + RECORD_HEADER.size
    end = start + length
    if end > len(buf):
        return None
    record = SpoolRecord(
        arrival,
        ext_seq,
        ext_ts,
        pt,
        bool(flags & FLAG_MARKER),
        ssrc,
        buf[start:end],
        bool(flags & FLAG_DISCONTINUITY),
    )
    return record, end


_HSIZE = RECORD_HEADER.size  # 32
_LEN_AT = _HSIZE - 2  # offset of the length field in a header
_MIN_RUN = 8  # equal lengths in a row worth a vectorised step
_WALK = 64  # records walked one by one after lengths turned out to vary
_COLUMNS = ("arrival", "ext_seq", "ext_ts", "pt", "flags", "ssrc", "length")


def _header_dtype() -> np.dtype[np.void]:
    import numpy as np

    return np.dtype(
        {
            "names": list(_COLUMNS),
            "formats": ["<f8", "<u8", "<u8", "u1", "u1", "<u4", "<u2"],
            "offsets": [0, 8, 16, 24, 25, 26, 30],
            "itemsize": _HSIZE,
        }
    )


def _record_offsets(buf: bytes) -> list[npt.NDArray[np.int64]]:
    """Offsets of the complete records' headers in ``buf``, as a list of arrays.

    At each point, records of the current record's payload length are assumed to follow and
    their length fields are checked with one strided numpy comparison (over at most twice
    the previous run, so varying lengths cost no more than walking them); where fewer than
    ``_MIN_RUN`` agree, the next ``_WALK`` records are walked reading only their length.
    """
    import numpy as np

    n = len(buf)
    parts: list[npt.NDArray[np.int64]] = []
    walked: list[int] = []
    pos = 0
    probe = n  # first hypothesis: one payload length all along
    while pos + _HSIZE <= n:
        length = buf[pos + _LEN_AT] | buf[pos + _LEN_AT + 1] << 8
        stride = _HSIZE + length
        fit = (n - pos) // stride  # records of this length that would fit from here
        if fit == 0:
            break  # truncated trailing record
        k = min(fit, probe)
        if k >= _MIN_RUN:
            lengths = np.ndarray((k,), "<u2", buf, pos + _LEN_AT, (stride,))
            same = lengths == length
            run = k if bool(same.all()) else int(same.argmin())
            if run >= _MIN_RUN:
                if walked:
                    parts.append(np.array(walked, np.int64))
                    walked = []
                parts.append(np.arange(pos, pos + run * stride, stride, dtype=np.int64))
                pos += run * stride
                probe = 2 * run if run == k else _WALK
                continue
        for _ in range(_WALK):
            if pos + _HSIZE > n:
                break
            end = pos + _HSIZE + (buf[pos + _LEN_AT] | buf[pos + _LEN_AT + 1] << 8)
            if end > n:
                break
            walked.append(pos)
            pos = end
        probe = _WALK
    if walked:
        parts.append(np.array(walked, np.int64))
    return parts


class RecordTable:
    """A leg's spooled records as numpy columns over the spool bytes.

    ``arrival`` (float64), ``ext_seq``, ``ext_ts``, ``pt``, ``ssrc`` (int64: extended
    counters of 2**63 and more, which no stream reaches, wrap negative), ``flags`` (uint8),
    and ``starts``/``lengths`` (int64): where each payload lies in ``data``. Row ``i`` is
    the ``i``-th record :func:`iter_records` yields for the same bytes (:meth:`record`).
    """

    __slots__ = (
        "arrival",
        "data",
        "ext_seq",
        "ext_ts",
        "flags",
        "lengths",
        "pt",
        "ssrc",
        "starts",
    )

    def __init__(
        self, data: bytes, headers: npt.NDArray[np.void], offsets: npt.NDArray[np.int64]
    ) -> None:
        """Use :meth:`parse` or :meth:`from_records`; ``headers`` are the records' headers
        (structured array) at ``offsets`` in ``data``."""
        import numpy as np

        self.data = data
        self.arrival: npt.NDArray[np.float64] = headers["arrival"].astype(np.float64)
        self.ext_seq: npt.NDArray[np.int64] = headers["ext_seq"].astype(np.int64)
        self.ext_ts: npt.NDArray[np.int64] = headers["ext_ts"].astype(np.int64)
        self.pt: npt.NDArray[np.int64] = headers["pt"].astype(np.int64)
        self.flags: npt.NDArray[np.uint8] = headers["flags"].astype(np.uint8)
        self.ssrc: npt.NDArray[np.int64] = headers["ssrc"].astype(np.int64)
        self.lengths: npt.NDArray[np.int64] = headers["length"].astype(np.int64)
        self.starts: npt.NDArray[np.int64] = offsets + _HSIZE

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RecordTable:
        """The records in ``data``; a truncated trailing record is ignored."""
        import numpy as np

        buf = bytes(data)
        dtype = _header_dtype()
        parts = _record_offsets(buf)
        if not parts:
            return cls(buf, np.zeros(0, dtype), np.zeros(0, np.int64))
        if len(parts) == 1 and len(parts[0]) > 1:
            offsets = parts[0]
            stride = int(offsets[1] - offsets[0])
            if np.all(np.diff(offsets) == stride):  # one length all along: a strided view
                headers = np.ndarray((len(offsets),), dtype, buf, int(offsets[0]), (stride,))
                return cls(buf, headers, offsets)
        offsets = np.concatenate(parts)
        raw = np.frombuffer(buf, np.uint8)
        gathered = raw[offsets[:, None] + np.arange(_HSIZE, dtype=np.int64)]
        return cls(buf, gathered.view(dtype).reshape(-1), offsets)

    @classmethod
    def from_records(cls, records: Iterable[SpoolRecord]) -> RecordTable:
        """The table of ``records`` as spooled (:meth:`SpoolRecord.encode`)."""
        return cls.parse(b"".join(r.encode() for r in records))

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def marker(self) -> npt.NDArray[np.bool_]:
        """The RTP marker bit of each record."""
        out: npt.NDArray[np.bool_] = (self.flags & FLAG_MARKER) != 0
        return out

    @property
    def discontinuity(self) -> npt.NDArray[np.bool_]:
        """Whether each record starts a new sequence context."""
        out: npt.NDArray[np.bool_] = (self.flags & FLAG_DISCONTINUITY) != 0
        return out

    def payload(self, i: int) -> bytes:
        """The payload of record ``i``."""
        start = int(self.starts[i])
        return self.data[start : start + int(self.lengths[i])]

    def payloads(self, idx: Iterable[int]) -> list[bytes]:
        """The payloads of records ``idx``, in that order."""
        data = self.data
        starts = self.starts.tolist()
        lengths = self.lengths.tolist()
        return [data[starts[i] : starts[i] + lengths[i]] for i in idx]

    def payload_octets(self, idx: npt.NDArray[np.intp]) -> tuple[bytes, npt.NDArray[np.int64]]:
        """The payloads of records ``idx`` concatenated, and their lengths.

        Payloads of consecutive records of one length are copied as one strided block.
        """
        import numpy as np

        lengths = self.lengths[idx]
        n = len(idx)
        if n == 0:
            return b"", lengths
        starts = self.starts[idx]
        # a new block wherever a record is not the next one in the spool or changes length
        brk = np.ones(n, np.bool_)
        brk[1:] = (starts[1:] != starts[:-1] + lengths[:-1] + _HSIZE) | (
            lengths[1:] != lengths[:-1]
        )
        bounds = np.flatnonzero(brk)
        if len(bounds) * _MIN_RUN > n:  # mostly scattered: slicing is as quick
            return b"".join(self.payloads(idx.tolist())), lengths
        data = self.data
        blocks: list[bytes] = []
        ends = [*bounds[1:].tolist(), n]
        for a, b in zip(bounds.tolist(), ends, strict=True):
            width = int(lengths[a])
            first = int(starts[a])
            if b - a == 1:
                blocks.append(data[first : first + width])
                continue
            if width == 0:
                continue
            view = np.ndarray((b - a, width), np.uint8, data, first, (width + _HSIZE, 1))
            blocks.append(view.tobytes())
        return b"".join(blocks), lengths

    def record(self, i: int) -> SpoolRecord:
        """Record ``i`` as a :class:`SpoolRecord`."""
        found = _record_at(self.data, int(self.starts[i]) - _HSIZE)
        assert found is not None  # the table holds whole records only
        return found[0]

    def records(self) -> Iterator[SpoolRecord]:
        """Every record as a :class:`SpoolRecord` (one object each: for the rare callers
        that want them, such as the raw-RTP export of a leg that cannot be decoded)."""
        for i in range(len(self)):
            yield self.record(i)
