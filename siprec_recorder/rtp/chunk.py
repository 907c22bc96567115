"""Datagrams read together, handled together: the fast path of many legs at once.

Theory of operation
-------------------
The pump (:mod:`.endpoint`) reads everything the media sockets hold into the rows of one
buffer: row ``i`` holds datagram ``i`` (``length[i]`` octets, kernel arrival ``arrival[i]``).
The rows read from one socket are adjacent, a *segment* ``(deliver, leg, start, n)``.
:func:`deliver_chunk` hands each segment on, in order.

Most segments of a recorder are a few packets of one plain RTP stream, each the successor
of the one before. Handling them one by one in Python (a header unpack, a dozen counter
updates and a record pack per packet) costs more than receiving them. Here that work is done
once per chunk with numpy, and once per segment in Python:

1. **Parse every row at once.** The fixed RTP header of each row, and whether the row simply
   continues the row before it: plain RTP (version 2, no CSRC, extension or padding), the same
   SSRC, payload type and payload size, the next sequence number, a timestamp that does not go
   back.
2. **Each leg claims its segment** (:meth:`LegReceiver.claim_run
   <siprec_recorder.rtp.leg.LegReceiver.claim_run>`) when the segment is one such *run* and its
   first packet is what the leg's own fast path would take. The leg moves its sequence,
   timestamp and jitter-buffer counters past the whole run at once.
3. **Build the spool records of every claimed row at once** (one structured array per payload
   size), then each leg appends its slice and updates its statistics from plain lists
   (:meth:`~siprec_recorder.rtp.leg.LegReceiver.commit_run`).

Everything else goes datagram by datagram to ``deliver`` (the leg's ``receive``): a segment
with a break in it, SRTP, RTCP, a leg not on its fast path, or a sink that is not a leg. The
result is byte for byte what ``receive`` gives for the same datagrams
(``tests/rtp/test_chunk.py`` compares the two on random streams).

A leg appears at most once in a chunk (the pump hands over a chunk after each round of reads,
and a round reads each socket once), so claiming all segments before any is committed cannot
reorder one leg's packets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .spoolfmt import FLAG_MARKER, RECORD_HEADER

if TYPE_CHECKING:
    import numpy.typing as npt

    from .leg import LegReceiver

__all__ = ["PacketChunk", "Segment", "deliver_chunk"]

Segment = tuple[Callable[[bytes, float], None], "LegReceiver | None", int, int]

# The spool record header (spoolfmt.RECORD_HEADER, "<dQQBBIH") as a numpy record.
RECORD_DTYPE = np.dtype(
    [
        ("arrival", "<f8"),
        ("ext_seq", "<u8"),
        ("ext_ts", "<u8"),
        ("pt", "u1"),
        ("flags", "u1"),
        ("ssrc", "<u4"),
        ("size", "<u2"),
    ]
)
assert RECORD_DTYPE.itemsize == RECORD_HEADER.size

_HALF_TS = 1 << 31


class PacketChunk:
    """Datagrams in the rows of a C-contiguous ``(rows, width)`` uint8 array.

    ``length`` and ``arrival`` hold, per row, the datagram's size and arrival (seconds).
    """

    __slots__ = ("arrival", "data", "length")

    def __init__(
        self,
        data: npt.NDArray[np.uint8],
        length: npt.NDArray[np.int64],
        arrival: npt.NDArray[np.float64],
    ) -> None:
        if data.ndim != 2 or not data.flags.c_contiguous:
            raise ValueError("chunk rows must be a C-contiguous 2-D array")
        if len(length) != len(arrival) or len(length) > len(data):
            raise ValueError("chunk length and arrival must have one entry per used row")
        self.data = data
        self.length = length
        self.arrival = arrival

    def __len__(self) -> int:
        return len(self.length)


def deliver_chunk(chunk: PacketChunk, segments: Sequence[Segment]) -> None:
    """Hand every segment of ``chunk`` on: claimed runs at once, the rest datagram by datagram."""
    count = len(chunk)
    if count == 0 or not segments:
        return
    taken = _runs(chunk, segments) if any(s[1] is not None for s in segments) else None
    if taken is not None and all(taken):
        return
    width = chunk.data.shape[1]
    flat = chunk.data.data.cast("B")
    lengths: list[int] = chunk.length.tolist()
    arrivals: list[float] = chunk.arrival.tolist()
    for k, (deliver, _leg, start, n) in enumerate(segments):
        if taken is not None and taken[k]:
            continue
        for i in range(start, start + n):
            at = i * width
            deliver(bytes(flat[at : at + lengths[i]]), arrivals[i])


@functools.lru_cache(maxsize=8)
def _header_dtype(width: int) -> np.dtype[Any]:
    """The fixed RTP header (RFC 3550 section 5.1) at the start of a row ``width`` wide."""
    return np.dtype(
        {
            "names": ["b0", "b1", "seq", "ts", "ssrc"],
            "formats": ["u1", "u1", ">u2", ">u4", ">u4"],
            "offsets": [0, 1, 2, 4, 8],
            "itemsize": width,
        }
    )


def _runs(chunk: PacketChunk, segments: Sequence[Segment]) -> list[bool]:
    """Steps 1 to 3 of the module docstring; returns which segments were taken as runs."""
    count = len(chunk)
    taken = [False] * len(segments)
    rows = chunk.data[:count]
    header = rows.view(_header_dtype(rows.shape[1]))[:, 0]
    length = chunk.length
    b1 = header["b1"]
    seq = header["seq"].astype(np.int64)
    ts = header["ts"].astype(np.int64)
    ssrc = header["ssrc"].astype(np.int64)
    pt = (b1 & 0x7F).astype(np.int64)
    size = length - 12
    plain = (header["b0"] == 0x80) & (length >= 12)
    step = np.zeros(count, dtype=np.int64)  # forward timestamp distance to the row before
    step[1:] = (ts[1:] - ts[:-1]) & 0xFFFFFFFF
    breaks = np.ones(count, dtype=np.int64)
    breaks[1:] = ~(
        plain[1:]
        & (seq[1:] == ((seq[:-1] + 1) & 0xFFFF))
        & (ssrc[1:] == ssrc[:-1])
        & (pt[1:] == pt[:-1])
        & (size[1:] == size[:-1])
        & (step[1:] < _HALF_TS)
    )
    breaks_before = np.cumsum(breaks)
    ts_sum = np.cumsum(step)

    # Step 2: each leg looks at its segment's first and last row (plain Python values).
    picked = [k for k, s in enumerate(segments) if s[1] is not None]
    first = np.fromiter((segments[k][2] for k in picked), dtype=np.int64, count=len(picked))
    counts = np.fromiter((segments[k][3] for k in picked), dtype=np.int64, count=len(picked))
    last = first + counts - 1
    whole = plain[first] & (breaks_before[last] == breaks_before[first])
    claimed: list[int] = []  # indexes into picked
    bases: list[int] = []  # ext_ts of the first row minus ts_sum there
    ext_firsts: list[int] = []
    rates: list[float | None] = []
    for j, ok, seq0, ssrc0, pt0, ts0, n, seq_n, span, sum0 in zip(
        range(len(picked)),
        whole.tolist(),
        seq[first].tolist(),
        ssrc[first].tolist(),
        pt[first].tolist(),
        ts[first].tolist(),
        counts.tolist(),
        seq[last].tolist(),
        (ts_sum[last] - ts_sum[first]).tolist(),
        ts_sum[first].tolist(),
        strict=True,
    ):
        if not ok:
            continue
        leg = segments[picked[j]][1]
        assert leg is not None
        got = leg.claim_run(seq0, ssrc0, pt0, ts0, n, seq_n, span)
        if got is not None:
            claimed.append(j)
            ext_firsts.append(got[0])
            bases.append(got[1] - sum0)
            rates.append(got[2])
    if not claimed:
        return taken

    # Step 3: the records and transit times of all claimed rows, in row order.
    runs = np.asarray(claimed, dtype=np.int64)
    starts, sizes_n = first[runs], counts[runs]
    run_of_row = np.repeat(np.arange(len(claimed)), sizes_n)
    row = np.arange(len(run_of_row)) + np.repeat(starts - (np.cumsum(sizes_n) - sizes_n), sizes_n)
    ext_seq = (np.asarray(ext_firsts, dtype=np.int64) - starts)[run_of_row] + row
    ext_ts = np.asarray(bases, dtype=np.int64)[run_of_row] + ts_sum[row]
    arrival = chunk.arrival[row]
    rate_of_run = np.array([r if r else np.nan for r in rates], dtype=np.float64)
    transit: list[float] = (arrival - ext_ts / rate_of_run[run_of_row]).tolist()
    arrivals: list[float] = arrival.tolist()
    run_sizes: list[int] = size[starts].tolist()
    row_size = size[row]
    tables: dict[int, tuple[memoryview, int]] = {}
    sizes = set(run_sizes)
    for value in sorted(sizes):
        # One payload size (the common case): every claimed row, in order, without a search.
        mine: Any = slice(None) if len(sizes) == 1 else np.flatnonzero(row_size == value)
        at = row[mine]
        table = np.empty(len(at), dtype=[("h", RECORD_DTYPE), ("p", "u1", (value,))])
        head = table["h"]
        head["arrival"] = arrival[mine]
        head["ext_seq"] = ext_seq[mine]
        head["ext_ts"] = ext_ts[mine]
        head["pt"] = pt[at]
        head["flags"] = (b1[at] >> 7) * FLAG_MARKER
        head["ssrc"] = ssrc[at]
        head["size"] = value
        table["p"] = rows[at, 12 : 12 + value]
        tables[value] = (table.view(np.uint8).data, table.itemsize)

    used = dict.fromkeys(tables, 0)  # rows of each table handed out so far (in row order)
    offset = 0
    for j, ext_first, rate, n, value in zip(
        claimed, ext_firsts, rates, sizes_n.tolist(), run_sizes, strict=True
    ):
        blob, stride = tables[value]
        u = used[value]
        used[value] = u + n
        k = picked[j]
        leg = segments[k][1]
        assert leg is not None
        leg.commit_run(
            blob[u * stride : (u + n) * stride],
            ext_first,
            arrivals[offset : offset + n],
            transit[offset : offset + n] if rate else None,
            n * (value + 12),
        )
        taken[k] = True
        offset += n
    return taken
