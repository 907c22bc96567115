"""The sans-IO receiver of one recorded leg (one m-line / one label).

Theory of operation
-------------------
``receive(datagram, now_wall)`` is called once per UDP datagram, on the loop that receives
the packets, so the path is short on purpose:

1. RTCP (RFC 5761 section 4 demultiplexing, i.e. rtcp-mux or a stray RTCP packet on the RTP
   port) goes to :meth:`receive_rtcp`: SRTCP unprotect, parse, keep the last SR/RR values.
2. SRTP unprotect (``None`` = authentication failed: counted, dropped).
3. One ``struct.unpack_from`` of the fixed header (RFC 3550 section 5.1), payload bounds.
4. Sequence context: a new SSRC, or a sequence jump beyond ``MAX_DROPOUT`` confirmed by the
   next packet (RFC 3550 appendix A.1 probation), flushes the jitter buffer and starts new
   unwrappers whose extended counters lie beyond the old ones; the first record released
   in the new context carries the discontinuity flag so the renderer re-anchors it by
   arrival time. A packet of the *previous* SSRC arriving within ``STRAY_WINDOW`` seconds
   of a switch is counted late instead of switching back.
5. The payload is copied into a spool record and pushed into the jitter buffer; released
   records are appended to one growing ``bytearray``. The datagram object is not kept: with
   the standard asyncio loop each one holds a memory mapping of its own, and a process that
   keeps them for a call's length hits the kernel's limit of about 65,000 mappings
   (``MemoryError``) long before memory runs out.

The caller takes those bytes about once a second (:meth:`take_spool_bytes`) and appends
them to the leg's fsync'd spool file; :meth:`finish` flushes the jitter buffer at the end.
Nothing here raises on bad input: malformed packets increment ``stats.bad_packets``.
Telephone-event (RFC 4733) and CN (RFC 3389) packets are spooled like audio; the renderer
interprets them.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from typing import Any

from .jitter import JitterBuffer
from .packet import is_rtcp
from .rtcp import parse_rtcp, summarize_reports
from .seq import SequenceUnwrapper, TimestampUnwrapper
from .spoolfmt import FLAG_DISCONTINUITY, FLAG_MARKER, RECORD_HEADER
from .stats import LegStats

__all__ = ["MAX_DROPOUT", "STATIC_PAYLOAD_TYPES", "STRAY_WINDOW", "LegReceiver"]

log = logging.getLogger(__name__)

MAX_DROPOUT = 3000
STRAY_WINDOW = 1.0
# A new SSRC is a new sender (RFC 3550 section 8.2) only when the current one has stopped
# for this long, or after a re-INVITE (allow_new_sender): an SBC restarting its stream
# stops the old one first, a third party injecting packets into a live call does not.
SSRC_SWITCH_GAP = 0.1
_FLAGS_OFFSET = 25  # offset of the flags octet inside a spool record header

# RFC 3551 table 4/5 (audio only): pt -> (encoding, clock rate)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    13: ("CN", 8000),
    18: ("G729", 8000),
}
_NON_AUDIO = ("TELEPHONE-EVENT", "CN")
_unpack_header = struct.Struct("!BBHII").unpack_from
_unpack_tail = struct.Struct("!BHII").unpack_from  # the header after its first octet
_pack_record = RECORD_HEADER.pack


class LegReceiver:
    """Receives the RTP (and RTCP) of one leg; see the module docstring.

    ``srtp`` is an :class:`~siprec_recorder.rtp.srtp.SrtpReceiver`, or ``(suite,
    key_params)`` from the offer's ``a=crypto`` (the receiver is then built here), or None.
    ``rtpmaps`` (pt -> (encoding, clock_rate, fmtp)) is optional and only used for the jitter
    estimate and the MOS codec; static payload types are known without it.
    """

    FAST_PATH = True  # False: every packet takes the full path (tests compare the two)

    def __init__(
        self,
        label: str,
        *,
        srtp: Any = None,
        jitter_window: int = 50,
        max_delay: float = 0.3,
        rtpmaps: Mapping[int, tuple[str, int, str | None]] | None = None,
    ) -> None:
        if isinstance(srtp, tuple | list):
            from .srtp import SrtpReceiver

            srtp = SrtpReceiver(str(srtp[0]), str(srtp[1]))
        self.label = label
        self.srtp = srtp
        self.stats = LegStats()
        self._jitter: JitterBuffer[bytes] = JitterBuffer(jitter_window, max_delay)
        self._buf = bytearray()
        self._ssrc: int | None = None
        self._prev_ssrc: int | None = None
        self._switched_at = 0.0
        self._sender_open = False
        self._seq: SequenceUnwrapper = SequenceUnwrapper()
        self._ts: TimestampUnwrapper = TimestampUnwrapper()
        self._unwrap_seq = self._seq.unwrap
        self._unwrap_ts = self._ts.unwrap
        self._last_seq16 = 0
        self._bad_seq: int | None = None
        self._pending_discontinuity = False
        self._rates: dict[int, float | None] = {}
        self._codecs: dict[int, str] = {}
        self._finished = False
        self._last_pt = -1
        self._late_base = 0
        self._dup_base = 0
        # The fast path of receive(): allowed while the last packet left the receiver in a
        # plain in-order state (see the end of _receive).
        self._fast = False
        self._next_seq16 = -1
        self._fast_rate: float | None = None
        self.set_rtpmaps(rtpmaps or {})

    # -- configuration ------------------------------------------------------------------

    def set_rtpmaps(self, rtpmaps: Mapping[int, tuple[str, int, str | None]]) -> None:
        """(Re)declare the payload types of this leg (e.g. after a re-INVITE)."""
        rates: dict[int, float | None] = {}
        codecs: dict[int, str] = {}
        for pt, (enc, rate) in STATIC_PAYLOAD_TYPES.items():
            rates[pt] = None if enc in _NON_AUDIO else float(rate)
            codecs[pt] = enc
        for pt, value in rtpmaps.items():
            enc = str(value[0]).upper()
            rate = int(value[1]) if len(value) > 1 else 8000
            rates[int(pt)] = None if enc in _NON_AUDIO or rate <= 0 else float(rate)
            codecs[int(pt)] = enc
        self._rates = rates
        self._codecs = codecs
        self._fast = False  # the fast path's payload type and rate are re-checked

    # -- receiving ----------------------------------------------------------------------

    @property
    def last_packet_at(self) -> float | None:
        """Wall-clock arrival of the last valid RTP packet (None before the first)."""
        return self.stats.last_packet_at

    def receive(self, datagram: bytes, now_wall: float) -> None:
        """Handle one datagram received on the leg's RTP port. Never raises."""
        try:
            # The common case, decided in a few comparisons: plain RTP (no SRTP, CSRC,
            # extension or padding) of the current SSRC, with the next sequence number and
            # payload type, and nothing waiting in the jitter buffer. It does exactly what
            # the full path below would do with such a packet.
            if self._fast and len(datagram) >= 12 and datagram[0] == 0x80:
                b1, seq16, ts32, ssrc = _unpack_tail(datagram, 1)
                if (
                    seq16 == self._next_seq16
                    and ssrc == self._ssrc
                    and (b1 & 0x7F) == self._last_pt
                ):
                    ext_seq = self._seq.step()
                    ext_ts = self._unwrap_ts(ts32)
                    self._last_seq16 = seq16
                    self._next_seq16 = (seq16 + 1) & 0xFFFF
                    jb = self._jitter
                    jb.next_seq = ext_seq + 1
                    jb.released += 1
                    stats = self.stats
                    rate = self._fast_rate
                    stats.packet(ext_seq, now_wall, ext_ts / rate if rate else None)
                    stats.bytes_received += len(datagram)
                    self._buf += _pack_record(
                        now_wall,
                        ext_seq,
                        ext_ts,
                        b1 & 0x7F,
                        FLAG_MARKER if b1 & 0x80 else 0,
                        ssrc,
                        len(datagram) - 12,
                    )
                    self._buf += memoryview(datagram)[12:]
                    return
            self._receive(datagram, now_wall)
        except Exception:  # pragma: no cover - defensive: bad input must never escape
            self.stats.bad_packets += 1
            log.debug("leg %s: unexpected error on a packet", self.label, exc_info=True)

    def allow_new_sender(self) -> None:
        """The next new SSRC is taken at once (the SRC renegotiated: a re-INVITE)."""
        self._sender_open = True

    def reject_source(self, count: int) -> None:
        """Count datagrams that the endpoint dropped for their source address."""
        self.stats.rejected_source += count

    def claim_run(
        self, seq16: int, ssrc: int, pt: int, ts32: int, count: int, last_seq16: int, ts_span: int
    ) -> tuple[int, int, float | None] | None:
        """Take ``count`` packets at once (the chunk path, :mod:`.chunk`), or refuse (None).

        The caller has checked that the packets are plain RTP, each the successor of the one
        before (same SSRC, payload type and size, sequence number plus one, timestamp
        ``ts_span`` ahead in all). They are taken when the first is what the fast path of
        :meth:`receive` would take, with a timestamp that does not go back. The counters move
        past the whole run; :meth:`commit_run` then adds its records and statistics. Returns
        the first packet's extended sequence number and timestamp, and the clock rate.
        """
        if not (
            self._fast and seq16 == self._next_seq16 and ssrc == self._ssrc and pt == self._last_pt
        ):
            return None
        ts = self._ts
        highest = ts.highest
        assert highest is not None
        forward = (ts32 - highest) & 0xFFFFFFFF
        if forward >= 0x80000000:
            return None
        ext_last = self._seq.advance(count)
        ts.advance(forward + ts_span)
        self._last_seq16 = last_seq16
        self._next_seq16 = (last_seq16 + 1) & 0xFFFF
        jb = self._jitter
        jb.next_seq = ext_last + 1
        jb.released += count
        return ext_last - count + 1, highest + forward, self._fast_rate

    def commit_run(
        self,
        records: memoryview,
        ext_first: int,
        arrivals: list[float],
        transits: list[float] | None,
        octets: int,
    ) -> None:
        """Append a claimed run's spool records (a buffer) and count its packets."""
        self._buf += records
        self.stats.run(ext_first, ext_first + len(arrivals) - 1, arrivals, transits)
        self.stats.bytes_received += octets

    def receive_rtcp(self, datagram: bytes, now_wall: float) -> None:
        """Handle one datagram from the RTCP port (or demultiplexed from RTP). Never raises."""
        try:
            data: bytes | None = datagram
            if self.srtp is not None:
                data = self.srtp.unprotect_rtcp(datagram)
                self.stats.srtp_auth_failures = self.srtp.auth_failures
                if data is None:
                    return
            assert data is not None
            packets = parse_rtcp(data)
        except Exception:
            self.stats.bad_packets += 1
            return
        self.stats.rtcp_packets += 1
        summarize_reports(packets, now_wall, self.stats.rtcp_reports)

    def _receive(self, data: bytes, now: float) -> None:
        n = len(data)
        if n < 12:
            self.stats.bad_packets += 1
            return
        b1 = data[1]
        if 64 <= (b1 & 0x7F) <= 95 and is_rtcp(data):
            self.receive_rtcp(data, now)
            return
        if self.srtp is not None:
            plain = self.srtp.unprotect(data)
            if plain is None:
                self.stats.srtp_auth_failures = self.srtp.auth_failures
                return
            data = plain
            n = len(data)
            if n < 12:
                self.stats.bad_packets += 1
                return
        b0, b1, seq16, ts32, ssrc = _unpack_header(data)
        if b0 == 0x80:  # no CSRC, extension or padding: the common case
            start = 12
            end = n
        else:
            if b0 & 0xC0 != 0x80:
                self.stats.bad_packets += 1
                return
            start = 12 + 4 * (b0 & 0x0F)
            if b0 & 0x10:
                if start + 4 > n:
                    self.stats.bad_packets += 1
                    return
                start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
            end = n
            if b0 & 0x20:
                end -= data[-1]
            if start > end or (b0 & 0x20 and data[-1] == 0):
                self.stats.bad_packets += 1
                return
        if self._finished:
            return

        stats = self.stats
        if ssrc != self._ssrc:
            if (
                self._ssrc is not None
                and ssrc == self._prev_ssrc
                and now - self._switched_at < (STRAY_WINDOW)
            ):
                stats.packets_late += 1
                return
            if (
                self._ssrc is not None
                and not self._sender_open
                and stats.last_packet_at is not None
                and now - stats.last_packet_at < SSRC_SWITCH_GAP
            ):
                stats.rejected_ssrc += 1
                return
            self._sender_open = False
            self._new_context(ssrc, now, first=self._ssrc is None)
        else:
            jump = (seq16 - self._last_seq16) & 0xFFFF
            if MAX_DROPOUT < jump < 0x10000 - MAX_DROPOUT:
                # RFC 3550 A.1: a big jump is believed only when the next packet follows it.
                if self._bad_seq == seq16:
                    self._bad_seq = None
                    self._new_context(ssrc, now, first=False)
                else:
                    self._bad_seq = (seq16 + 1) & 0xFFFF
                    stats.bad_packets += 1
                    return

        ext_seq = self._unwrap_seq(seq16)
        ext_ts = self._unwrap_ts(ts32)
        if ext_seq >= (self._seq.highest or 0):
            self._last_seq16 = seq16
        pt = b1 & 0x7F
        flags = FLAG_MARKER if b1 & 0x80 else 0
        record = _pack_record(now, ext_seq, ext_ts, pt, flags, ssrc, end - start) + data[start:end]
        jb = self._jitter
        released = jb.push(ext_seq, record, now)
        if jb.duplicates != self._dup_base:
            self._dup_base = jb.duplicates
            stats.packets_duplicate += 1
            return
        if jb.late != self._late_base:
            self._late_base = jb.late
            stats.packets_late += 1
        rate = self._rates.get(pt)
        if pt != self._last_pt:
            self._last_pt = pt
            if rate is not None:
                stats.codec = self._codecs.get(pt)
        stats.packet(ext_seq, now, ext_ts / rate if rate else None)
        stats.bytes_received += n
        if released:
            if len(released) == 1 and not self._pending_discontinuity:
                self._buf += released[0]
            else:
                self._append(released)
        # The next packet may take the fast path when it simply continues this one.
        self._fast = (
            self.FAST_PATH
            and self.srtp is None
            and not self._pending_discontinuity
            and not len(jb)
            and jb.next_seq == ext_seq + 1
            and self._seq.highest == ext_seq
            and not 64 <= pt <= 95  # could be RTCP: the full path tells them apart
        )
        self._next_seq16 = (seq16 + 1) & 0xFFFF
        self._fast_rate = rate

    def _new_context(self, ssrc: int, now: float, *, first: bool) -> None:
        released = self._jitter.reset()
        if released:
            self._append(released)
        if not first:
            self.stats.ssrc_changes += ssrc != self._ssrc
            self._pending_discontinuity = True
            seq_high = self._seq.highest or 0
            ts_high = self._ts.highest or 0
            self._seq = SequenceUnwrapper((seq_high >> 16) + 2)
            self._ts = TimestampUnwrapper((ts_high >> 32) + 2)
            self._unwrap_seq = self._seq.unwrap
            self._unwrap_ts = self._ts.unwrap
        self._prev_ssrc = self._ssrc
        self._ssrc = ssrc
        self._switched_at = now
        self._bad_seq = None
        self._dup_base = self._jitter.duplicates
        self._late_base = self._jitter.late
        self.stats.new_context()

    def _append(self, records: list[bytes]) -> None:
        buf = self._buf
        if self._pending_discontinuity:
            self._pending_discontinuity = False
            pos = len(buf)
            buf += records[0]
            buf[pos + _FLAGS_OFFSET] |= FLAG_DISCONTINUITY
            records = records[1:]
        for r in records:
            buf += r

    # -- output -------------------------------------------------------------------------

    def poll(self, now_wall: float) -> None:
        """Release packets that waited longer than the jitter buffer's ``max_delay``."""
        released = self._jitter.poll(now_wall)
        if released:
            self._append(released)

    def take_spool_bytes(self, now_wall: float | None = None) -> bytes:
        """Records released since the last call, in spool format (and forget them)."""
        if now_wall is not None:
            self.poll(now_wall)
        if not self._buf:
            return b""
        out = bytes(self._buf)
        self._buf = bytearray()
        return out

    def finish(self) -> bytes:
        """Flush the jitter buffer and return the remaining records; later packets are ignored."""
        released = self._jitter.flush()
        if released:
            self._append(released)
        self._finished = True
        self._fast = False
        return self.take_spool_bytes()
