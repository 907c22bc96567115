"""Offline rendering of a recorded call: spooled RTP of every leg -> one PCM timeline.

Theory of operation
-------------------
Runs in a worker (thread or process) at the end of a call or on crash recovery, never on
the receiving event loop. Everything is vectorised with numpy over whole legs; Python loops
run per segment or per run of packets, never per sample. A leg is read as columns
(:class:`~.spoolfmt.RecordTable`) straight from its spool bytes, so no Python object is made
per packet either, except where a decoder wants each payload as ``bytes`` (those of PyAV);
G.711 decodes a run's payloads as one block.

1. **Segments.** A leg's records (in spool order: sequence order within a sequence
   context) are cut into segments wherever the RTP timeline cannot be trusted to continue:
   a discontinuity flag (new sequence context written by the receiver), an SSRC change, a
   change of RTP clock or decoded sample rate (codec switch), a timestamp going backwards,
   or a timestamp step that disagrees with the arrival-time step by more than
   ``JUMP_TOLERANCE`` seconds (the SRC restarted its timestamps, or froze them over a hold).
   Telephone-event packets (whose timestamp is the event start) do not take part.
2. **Placement.** Inside a segment, each payload goes at its RTP timestamp offset, so loss,
   DTX and holds with running timestamps become silence in place and nothing is shifted.
   The segment is anchored on the wall clock from the arrival times (RFC 3550 section
   5.1: timestamps are relative, arrival time is what relates streams): wall-seconds per
   media-second ``b`` is the slope of the lower envelope of arrival against timestamp when
   the segment spans ``DRIFT_MIN_SPAN`` seconds or more and the drift accumulates to more
   than ``DRIFT_MIN_SHIFT`` over the segment (clock drift of the SRC, e.g. 0.3 %), else 1.
   Network and sender delay only ever make a packet late, so the packets that trace the
   clocks' relation are the least-delayed ones: the estimate is the line under every
   packet that touches the lower convex hull at the segment's mean time (the linear
   programme of Moon, Skelly and Towsley, "Estimation and removal of clock skew from
   network delay measurements", 1999), taken over the least-delayed packet of each of up
   to ``_SKEW_WINDOWS`` windows. A least-squares fit would read a stretch of late packets
   (a congested link, a busy sender at the start of the call) as drift and resample audio
   that never drifted. The offset is the smallest residual ``arrival - b * t`` (the
   least-delayed packet), measured from ``session_start``.
3. **Resampling.** Each segment is brought from its decoded rate to the output rate and
   stretched by ``b``: 8 -> 16 kHz by a 16-tap windowed-sinc half-sample interpolator,
   block-averaging when the decoded rate is an integer multiple of the output rate (Opus
   48 kHz -> 16 kHz), and the drift stretch (and any other ratio) by linear interpolation.
   The output rate is 16 kHz when any leg decodes wideband audio, else 8 kHz.
4. **Mix.** Mono sums the legs in int32 and clips to int16; stereo puts leg 0 left and leg 1
   right (further legs alternate). Gaps are zeros.
5. **DTMF.** RFC 4733 packets are grouped by (SSRC, timestamp): the retransmitted end
   packets collapse into one entry whose duration is the largest reported; its time is
   ``arrival - duration so far`` of its first report (the smallest duration).

Per-leg results (``Rendered.per_leg``) give the codec, status (``ok``, ``no_media``,
``unsupported_codec``, ``decode_failed`` when no audio payload decoded), the payloads that
decoded to nothing, first/last packet time, segment count, measured drift, and
statistics computed from the spooled packets alone (used after a crash, when the live
receiver's counters are gone).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .codecs import Decoder, G711Decoder, cn_level_dbov, get_decoder, parse_telephone_event
from .errors import RtpParseError
from .spoolfmt import RecordTable, SpoolRecord
from .stats import estimate_mos

__all__ = [
    "DRIFT_MIN_SPAN",
    "JUMP_TOLERANCE",
    "LegMedia",
    "Rendered",
    "clock_skew",
    "render_call",
    "resample_linear",
    "upsample2",
]

log = logging.getLogger(__name__)

JUMP_TOLERANCE = 0.5  # seconds of disagreement between timestamp and arrival steps
DRIFT_MIN_SPAN = 20.0  # seconds of media before a drift ratio is estimated
MAX_DRIFT = 0.02  # larger apparent drift is not believed (b = 1 then)
DRIFT_MIN_SHIFT = 0.02  # seconds of accumulated drift over a segment before correcting it
_SKEW_WINDOW_S = 2.0  # the skew estimate takes the least-delayed packet of each such window
_SKEW_WINDOWS = 256  # ... and of at most this many windows (longer ones for long segments)
_CHUNK = 1 << 20

# RFC 3551 static audio payload types
_STATIC: dict[int, tuple[str, int, str | None]] = {
    0: ("PCMU", 8000, None),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    8: ("PCMA", 8000, None),
    9: ("G722", 8000, None),
    13: ("CN", 8000, None),
    18: ("G729", 8000, None),
}

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]


@dataclass
class LegMedia:
    """The spooled media of one leg, with its payload-type map from the SDP.

    ``records`` is the leg's spool as written (bytes, read by :meth:`table` without an
    object per packet), a :class:`RecordTable`, or :class:`SpoolRecord` objects.
    """

    label: str
    records: RecordTable | bytes | bytearray | memoryview | Iterable[SpoolRecord]
    rtpmaps: dict[int, tuple[str, int, str | None]] = field(default_factory=dict)
    role: str | None = None
    _table: RecordTable | None = field(default=None, init=False, repr=False, compare=False)

    def table(self) -> RecordTable:
        """The leg's records as columns (built on first use, then kept)."""
        if self._table is None:
            recs = self.records
            if isinstance(recs, RecordTable):
                self._table = recs
            elif isinstance(recs, bytes | bytearray | memoryview):
                self._table = RecordTable.parse(recs)
            else:
                self._table = RecordTable.from_records(recs)
        return self._table


@dataclass(frozen=True, slots=True)
class Rendered:
    """The rendered call. ``pcm`` is int16 shaped (n, 1) or (n, 2)."""

    pcm: I16
    sample_rate: int
    duration_s: float
    dtmf: list[tuple[str, str, float, int]]
    per_leg: dict[str, dict[str, Any]]
    # Each leg alone on the recording's timeline, before mixing (for per-leg transcription).
    tracks: dict[str, I16] = field(default_factory=dict)


@dataclass
class _Segment:
    start_s: float  # wall position of its first sample, relative to session_start
    stretch: float  # wall seconds per media second
    rate: int  # decoded sample rate
    audio: I16


def resample_linear(x: npt.NDArray[Any], out_len: int) -> F32:
    """Resample ``x`` to ``out_len`` samples by linear interpolation (chunked, vectorised)."""
    n = len(x)
    if out_len <= 0 or n == 0:
        return np.zeros(max(out_len, 0), np.float32)
    src = x.astype(np.float32, copy=False)
    if out_len == n:
        return src
    step = n / out_len
    out = np.empty(out_len, np.float32)
    for s in range(0, out_len, _CHUNK):
        e = min(out_len, s + _CHUNK)
        pos = np.arange(s, e, dtype=np.float64) * step
        i0 = pos.astype(np.int64)
        frac = (pos - i0).astype(np.float32)
        np.minimum(i0, n - 1, out=i0)
        i1 = np.minimum(i0 + 1, n - 1)
        out[s:e] = src[i0] * (1.0 - frac) + src[i1] * frac
    return out


def _block_mean(x: I16, factor: int) -> F32:
    n = (len(x) // factor) * factor
    out: F32 = x[:n].astype(np.float32).reshape(-1, factor).mean(axis=1, dtype=np.float32)
    return out


def _half_sample_taps(n: int = 16) -> F32:
    j = np.arange(n) - (n // 2 - 1)  # -7..8 for 16 taps
    d = j - 0.5
    taps = np.sinc(d) * (0.5 + 0.5 * np.cos(np.pi * d / (n // 2 + 0.5)))  # Hann-windowed sinc
    out: F32 = (taps / taps.sum()).astype(np.float32)
    return out


_HALF_TAPS = _half_sample_taps()


def upsample2(x: npt.NDArray[Any]) -> F32:
    """Double the sample rate: originals kept, midpoints by a 16-tap windowed-sinc filter."""
    n = len(x)
    src = x.astype(np.float32)
    if n == 0:
        return src
    k = len(_HALF_TAPS)
    padded = np.concatenate([np.zeros(k // 2 - 1, np.float32), src, np.zeros(k // 2, np.float32)])
    mid = np.correlate(padded, _HALF_TAPS, mode="valid")[:n]
    out = np.empty(2 * n, np.float32)
    out[0::2] = src
    out[1::2] = mid
    return out


def _to_rate(audio: I16, rate: int, out_rate: int, stretch: float) -> I16:
    if rate == out_rate and abs(stretch - 1.0) < 1e-9:
        return audio
    src: npt.NDArray[Any] = audio
    if rate * 2 == out_rate:
        src = upsample2(audio)
        rate = out_rate
        if abs(stretch - 1.0) < 1e-9:
            return np.clip(np.rint(src), -32768, 32767).astype(np.int16)
    if rate > out_rate and rate % out_rate == 0:
        src = _block_mean(audio, rate // out_rate)
        rate = out_rate
    out_len = int(round(len(src) * out_rate / rate * stretch))
    res = resample_linear(src, out_len)
    return np.clip(np.rint(res), -32768, 32767).astype(np.int16)


def clock_skew(t_media: npt.NDArray[np.float64], arrival: npt.NDArray[np.float64]) -> float:
    """Wall seconds per media second, from the lower envelope of ``arrival`` against
    ``t_media`` (non-decreasing media times in seconds; see the module docstring).

    Each window of ``_SKEW_WINDOW_S`` (longer when there would be more than
    ``_SKEW_WINDOWS``) gives its least-delayed packet; the answer is the slope of the lower
    convex hull of those points where it passes the mean of their media times. "Least
    delayed" is measured against the slope found so far: with a 2 % skew the line falls
    0.4 ms between two packets, so a slightly late packet at a window's end could pass for
    the window's best; a second pass, with the first slope taken out, picks the right one.
    """
    if len(t_media) < 2:
        return 1.0
    span = float(t_media[-1] - t_media[0])
    if span <= 0:
        return 1.0
    windows = int(min(_SKEW_WINDOWS, max(2, span // _SKEW_WINDOW_S)))
    edges = np.searchsorted(t_media, t_media[0] + span * np.arange(1, windows) / windows)
    starts = np.unique(np.concatenate([[0], edges]))
    starts = starts[starts < len(t_media)]
    bounds = list(zip(starts.tolist(), np.append(starts[1:], len(t_media)).tolist(), strict=True))
    slope = 0.0  # of arrival - t_media against t_media
    for _ in range(2):
        residual = arrival - (1.0 + slope) * t_media
        low = [a + int(np.argmin(residual[a:b])) for a, b in bounds]
        slope += _lower_hull_slope(t_media[low].tolist(), residual[low].tolist())
    return 1.0 + slope


def _lower_hull_slope(xs: list[float], ys: list[float]) -> float:
    """Slope of the lower convex hull of the points (``xs`` increasing) at their mean x:
    of the line under every point with the least total distance to them (0 for fewer
    than two points)."""
    hull: list[int] = []  # monotone chain
    for k in range(len(xs)):
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            # drop j when it lies on or above the line from i to k
            if (ys[j] - ys[i]) * (xs[k] - xs[i]) >= (ys[k] - ys[i]) * (xs[j] - xs[i]):
                hull.pop()
            else:
                break
        hull.append(k)
    if len(hull) < 2:
        return 0.0
    centre = sum(xs) / len(xs)
    edges = list(zip(hull[:-1], hull[1:], strict=True))
    i, j = next(((i, j) for i, j in edges if xs[j] >= centre), edges[-1])
    return (ys[j] - ys[i]) / (xs[j] - xs[i]) if xs[j] > xs[i] else 0.0


def _rtp_jitter_ms(arrival: npt.NDArray[np.float64], ts_s: npt.NDArray[np.float64]) -> float:
    """RFC 3550 A.8 jitter at the end of the stream, vectorised (J_n = sum w_k |D_k|)."""
    if len(arrival) < 2:
        return 0.0
    order = np.argsort(arrival, kind="stable")
    transit = arrival[order] - ts_s[order]
    d = np.abs(np.diff(transit))
    n = len(d)
    k = min(n, 2000)  # weights (15/16)^m are < 1e-56 beyond that
    w = (1.0 / 16.0) * (15.0 / 16.0) ** np.arange(k - 1, -1, -1, dtype=np.float64)
    return float(np.dot(w, d[n - k :]) * 1000.0)


_AUDIO, _CN, _EVENT, _UNSUPPORTED = 0, 1, 2, 3
_PLACE_BLOCK = 4096  # packets placed per vectorised step (bounds the index arrays)


class _LegRenderer:
    """Decodes and places one leg's records as segments on the wall-clock timeline."""

    def __init__(self, leg: LegMedia, session_start: float) -> None:
        self.leg = leg
        self.session_start = session_start
        maps = dict(_STATIC)
        maps.update({int(k): v for k, v in leg.rtpmaps.items()})
        self.maps = maps
        self.decoders: dict[int, Decoder | None] = {}
        self.segments: list[_Segment] = []
        self.dtmf: list[tuple[str, str, float, int]] = []
        self.info: dict[str, Any] = {"label": leg.label, "role": leg.role}
        self.unsupported: set[str] = set()
        self.audio_payloads = 0  # audio payloads handed to a decoder
        self.silent_payloads = 0  # ... of which produced no samples (decode errors)
        self.table = leg.table()
        # per payload type (0..127) lookup tables
        self.kind_of = np.full(128, _UNSUPPORTED, np.int8)
        self.clock_of = np.full(128, 8000.0)
        self.rate_of = np.zeros(128)

    # -- payload types ------------------------------------------------------------------

    def _classify(self, pts: Iterable[int]) -> None:
        for pt in pts:
            enc = self.maps.get(pt, (f"PT{pt}", 8000, None))[0].upper()
            if enc == "TELEPHONE-EVENT":
                kind = _EVENT
            elif enc == "CN":
                kind = _CN
            else:
                kind = _AUDIO if self.decoder(pt) is not None else _UNSUPPORTED
            self.kind_of[pt] = kind
            self.clock_of[pt] = self.clock(pt)
            dec = self.decoders.get(pt)
            self.rate_of[pt] = dec.sample_rate if dec is not None else 0.0

    def decoder(self, pt: int) -> Decoder | None:
        if pt not in self.decoders:
            enc, rate, fmtp = self.maps.get(pt, (f"PT{pt}", 8000, None))
            dec = get_decoder(enc, int(rate), fmtp)
            self.decoders[pt] = dec
            if dec is None and enc.upper() not in ("TELEPHONE-EVENT", "CN"):
                self.unsupported.add(enc)
        return self.decoders[pt]

    def clock(self, pt: int) -> int:
        enc, rate = self.maps.get(pt, ("", 8000, None))[:2]
        if enc.upper() == "OPUS":
            return 48000
        return int(rate) if rate and int(rate) > 0 else 8000

    # -- rendering ----------------------------------------------------------------------

    def run(self) -> None:
        table = self.table
        info = self.info
        if not len(table):
            info.update(
                status="no_media",
                codec=None,
                sample_rate=None,
                first_packet_at=None,
                segments=0,
                packets_received=0,
                packets_expected=0,
                packets_lost=0,
            )
            return
        self.arrival = table.arrival
        self.ts = table.ext_ts
        self.seq = table.ext_seq
        self.pt = table.pt
        self.ssrc = table.ssrc
        self.disc = table.discontinuity
        self._classify(int(p) for p in np.unique(self.pt))
        kind = self.kind_of[self.pt]
        media = np.flatnonzero(kind != _EVENT)
        events = np.flatnonzero(kind == _EVENT)
        audio_pts = self.pt[media][kind[media] != _CN]
        main_pt: int | None = None
        if len(audio_pts):
            values, counts = np.unique(audio_pts, return_counts=True)
            main_pt = int(values[np.argmax(counts)])
        codec = None
        if main_pt is not None:
            codec = self.maps.get(main_pt, (f"PT{main_pt}", 0, None))[0]
        self._statistics(media, codec)
        dec = self.decoders.get(main_pt) if main_pt is not None else None
        status = "ok"
        if main_pt is not None and self.kind_of[main_pt] == _UNSUPPORTED:
            status = "unsupported_codec"
        elif not len(media):
            status = "no_media"
        info.update(
            status=status,
            codec=codec,
            sample_rate=dec.sample_rate if dec is not None else None,
            first_packet_at=round(float(self.arrival[0]) - self.session_start, 3),
            last_packet_at=round(float(self.arrival.max()) - self.session_start, 3),
        )
        if self.unsupported:
            info["unsupported_encodings"] = sorted(self.unsupported)
        drift: list[float] = []
        for seg in self._split(media):
            placed = self._render_segment(seg)
            if placed is not None:
                self.segments.append(placed)
                if placed.stretch != 1.0:
                    drift.append(placed.stretch)
        if self.audio_payloads and self.silent_payloads == self.audio_payloads:
            # Packets came in a codec we decode, yet not one decoded (wrong packing or
            # fmtp, a mislabelled payload type): say so instead of "ok" over silence.
            info["status"] = "decode_failed"
        info["undecoded_packets"] = self.silent_payloads
        info["segments"] = len(self.segments)
        info["drift_ppm"] = round((drift[0] - 1.0) * 1e6) if drift else 0
        self._dtmf(events)
        info["dtmf"] = len(self.dtmf)

    def _split(self, media: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]]:
        """Cut the media records (indices) into segments (see the module docstring)."""
        n = len(media)
        if not n:
            return []
        pts = self.pt[media]
        clock = self.clock_of[pts]
        srate = self.rate_of[pts]
        # CN and undecodable packets take the sample rate of the audio before them.
        if np.any(srate == 0):
            nz = srate != 0
            if np.any(nz):
                idx = np.where(nz, np.arange(n), 0)
                np.maximum.accumulate(idx, out=idx)
                first = int(np.argmax(nz))
                idx[:first] = first
                srate = srate[idx]
            else:
                srate = clock.copy()
        self._seg_srate = srate
        brk = np.zeros(n, np.bool_)
        brk[0] = True
        if n > 1:
            ts = self.ts[media].astype(np.float64)
            arrival = self.arrival[media]
            ssrc = self.ssrc[media]
            d_ts = np.diff(ts) / clock[1:]
            d_arr = np.diff(arrival)
            brk[1:] = (
                self.disc[media][1:]
                | (ssrc[1:] != ssrc[:-1])
                | (clock[1:] != clock[:-1])
                | (srate[1:] != srate[:-1])
                | (d_ts < 0)
                | (np.abs(d_ts - d_arr) > JUMP_TOLERANCE)
            )
        bounds = np.flatnonzero(brk).tolist() + [n]
        return [media[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _render_segment(self, idx: npt.NDArray[np.intp]) -> _Segment | None:
        n = len(idx)
        table = self.table
        pts = self.pt[idx]
        kinds = self.kind_of[pts]
        clock = float(self.clock_of[pts[0]])
        rates = self.rate_of[pts][kinds == _AUDIO]
        rate = int(rates[0]) if len(rates) else int(clock)
        ts = self.ts[idx]
        arrival = self.arrival[idx] - self.session_start
        rel_ts = ts - ts[0]
        t_media = rel_ts / clock
        stretch = 1.0
        if n >= 50 and t_media[-1] >= DRIFT_MIN_SPAN:
            slope = clock_skew(t_media, arrival)
            # Resample only when the drift adds up to something audible over the segment.
            if abs(slope - 1.0) <= MAX_DRIFT and abs(slope - 1.0) * t_media[-1] > DRIFT_MIN_SHIFT:
                stretch = slope
        offset = float(np.min(arrival - stretch * t_media))
        pos = np.rint(rel_ts * (rate / clock)).astype(np.int64)
        # Decode runs of consecutive records of one payload type.
        run_bounds = [0, *(np.flatnonzero(np.diff(pts) != 0) + 1).tolist(), n]
        decoded: list[tuple[int, I16, npt.NDArray[np.int64]]] = []  # (first index, pcm, lens)
        cn: list[tuple[int, int]] = []  # (segment index, level)
        for a, b in zip(run_bounds[:-1], run_bounds[1:], strict=True):
            pt = int(pts[a])
            kind = int(kinds[a])
            if kind == _AUDIO:
                dec = self.decoders[pt]
                assert dec is not None
                if isinstance(dec, G711Decoder):
                    # Stateless, one sample per octet: the run's payloads decode as one.
                    octets, lengths = table.payload_octets(idx[a:b])
                    samples = dec.decode(octets)
                else:
                    samples, lengths = dec.decode_run(table.payloads(idx[a:b].tolist()))
                decoded.append((a, samples, lengths))
            elif kind == _CN:
                cn.extend((k, cn_level_dbov(table.payload(int(idx[k])))) for k in range(a, b))
        all_lens = [d[2] for d in decoded]
        lens = np.concatenate(all_lens) if all_lens else np.zeros(0, np.int64)
        self.audio_payloads += len(lens)
        self.silent_payloads += int(np.count_nonzero(lens == 0))
        typical = int(np.median(lens)) if len(lens) else int(rate * 0.02)
        total = int(pos[-1]) + max(typical, 0)
        for a, _samples, lengths in decoded:
            if len(lengths):
                total = max(total, int(np.max(pos[a : a + len(lengths)] + lengths)))
        audio = np.zeros(total, np.int16)
        for a, samples, lengths in decoded:
            _place(audio, samples, pos[a : a + len(lengths)], lengths)
        if cn:
            rng = np.random.default_rng(0x5EED)
            for k, level in cn:
                lo = int(pos[k])
                hi = int(pos[k + 1]) if k + 1 < n else lo + typical
                hi = min(hi, lo + 10 * rate, total)
                if hi > lo and level < 127:
                    amp = 32768.0 * 10.0 ** (-level / 20.0)
                    noise = rng.uniform(-amp * 1.7, amp * 1.7, hi - lo)  # uniform: rms = amp
                    audio[lo:hi] = np.clip(noise, -32768, 32767).astype(np.int16)
        return _Segment(start_s=offset, stretch=stretch, rate=rate, audio=audio)

    def _dtmf(self, events: npt.NDArray[np.intp]) -> None:
        groups: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
        rates: dict[tuple[int, int], int] = {}
        table = self.table
        columns = (
            table.ssrc[events],
            table.ext_ts[events],
            table.arrival[events],
            table.pt[events],
        )
        for i, ssrc, ts, arrival, pt in zip(
            events.tolist(), *(c.tolist() for c in columns), strict=True
        ):
            try:
                ev = parse_telephone_event(table.payload(i))
            except RtpParseError:
                continue
            if ev.event > 15:
                continue
            groups.setdefault((ssrc, ts), []).append((arrival, ev.event, ev.duration))
            rates[(ssrc, ts)] = self.clock(pt)
        for key, items in groups.items():
            pt_rate = rates[key]
            # The first report of an event (smallest duration so far) dates it best.
            first = min(items, key=lambda it: (it[2], it[0]))
            start = first[0] - first[2] / pt_rate - self.session_start
            event = Counter(e for _a, e, _d in items).most_common(1)[0][0]
            duration = max(d for _a, _e, d in items)
            self.dtmf.append(
                (
                    self.leg.label,
                    "0123456789*#ABCD"[event],
                    round(max(start, 0.0), 3),
                    int(round(duration * 1000 / pt_rate)),
                )
            )
        self.dtmf.sort(key=lambda x: x[2])

    def _statistics(self, media: npt.NDArray[np.intp], codec: str | None) -> None:
        """Reception statistics from the spooled packets alone (crash recovery)."""
        n = len(self.seq)
        new_ctx = np.ones(n, np.bool_)
        new_ctx[1:] = self.disc[1:] | (self.ssrc[1:] != self.ssrc[:-1])
        starts = np.flatnonzero(new_ctx)
        expected = int(
            np.sum(
                np.maximum.reduceat(self.seq, starts) - np.minimum.reduceat(self.seq, starts) + 1
            )
        )
        received = int(len(np.unique(self.seq)))
        lost = max(0, expected - received)
        jitter = 0.0
        if len(media):
            ts_s = self.ts[media] / self.clock_of[self.pt[media]]
            jitter = _rtp_jitter_ms(self.arrival[media], ts_s)
        gaps = np.diff(np.sort(self.arrival))
        self.info.update(
            packets_expected=expected,
            packets_received=received,
            packets_lost=lost,
            packets_duplicate=n - received,
            jitter_ms=round(jitter, 2),
            longest_gap_ms=round(float(gaps.max()) * 1000.0, 1) if len(gaps) else 0.0,
            mos=estimate_mos(codec, lost / expected if expected else 0.0, jitter),
        )


_SCATTERED = 8  # more than one run of adjacent payloads per this many: fancy indexing


def _place(
    audio: I16, samples: I16, pos: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> None:
    """Write each payload's samples at its position, in order (a later payload wins where
    two overlap); samples that fall outside ``audio`` are dropped.

    Payloads that follow each other without a gap (the usual case: no loss) are copied as
    one slice per run; when runs are short (loss everywhere, timestamps that do not add up
    to the payload lengths) all go through fancy indexing, in blocks (:func:`_place_scattered`).
    """
    n = len(lengths)
    if not n:
        return
    starts = np.cumsum(lengths) - lengths
    firsts = np.flatnonzero(pos[1:] != pos[:-1] + lengths[:-1]) + 1
    if (len(firsts) + 1) * _SCATTERED > n:
        _place_scattered(audio, samples, pos, lengths, starts)
        return
    total = len(audio)
    firsts = np.concatenate([[0], firsts])
    ends = np.append(starts[firsts[1:]], starts[-1] + lengths[-1])  # in samples
    runs = zip(pos[firsts].tolist(), starts[firsts].tolist(), ends.tolist(), strict=True)
    for at, src0, src1 in runs:
        lo = max(at, 0)
        hi = min(at + src1 - src0, total)
        if hi > lo:
            audio[lo:hi] = samples[src0 + lo - at : src0 + hi - at]


def _place_scattered(
    audio: I16,
    samples: I16,
    pos: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
) -> None:
    """:func:`_place` by fancy indexing; blocks of payloads keep the index arrays small."""
    total = len(audio)
    for b0 in range(0, len(lengths), _PLACE_BLOCK):
        b1 = min(len(lengths), b0 + _PLACE_BLOCK)
        ln = lengths[b0:b1]
        if not len(ln):
            continue
        src0 = int(starts[b0])
        src1 = int(starts[b1 - 1] + ln[-1])
        block = samples[src0:src1]
        if np.all(ln == ln[0]):
            width = int(ln[0])
            if width == 0:
                continue
            dest = (pos[b0:b1, None] + np.arange(width, dtype=np.int64)).ravel()
        else:
            dest = np.repeat(pos[b0:b1] - (starts[b0:b1] - src0), ln) + np.arange(
                len(block), dtype=np.int64
            )
        ok = (dest >= 0) & (dest < total)
        if ok.all():
            audio[dest] = block
        else:
            audio[dest[ok]] = block[ok]


def _mix(tracks: list[I16], channels: int) -> I16:
    n = max((len(t) for t in tracks), default=0)
    out = np.zeros((n, channels), np.int16)
    for s in range(0, n, _CHUNK):
        e = min(n, s + _CHUNK)
        acc = np.zeros((e - s, channels), np.int32)
        for idx, t in enumerate(tracks):
            part = t[s:e]
            if len(part):
                acc[: len(part), idx % channels if channels > 1 else 0] += part
        np.clip(acc, -32768, 32767, out=acc)
        out[s:e] = acc
    return out


def render_call(
    legs: list[LegMedia],
    *,
    channels: Literal["mono", "stereo"] | str = "mono",
    session_start: float,
) -> Rendered:
    """Decode, align and mix the legs of one call (see the module docstring)."""
    nch = 2 if str(channels).lower() == "stereo" else 1
    renderers = [_LegRenderer(leg, session_start) for leg in legs]
    for r in renderers:
        r.run()
    wideband = any(seg.rate >= 16000 for r in renderers for seg in r.segments)
    out_rate = 16000 if wideband else 8000
    tracks: list[I16] = []
    for r in renderers:
        placed: list[tuple[int, I16]] = []
        end = 0
        for seg in r.segments:
            audio = _to_rate(seg.audio, seg.rate, out_rate, seg.stretch)
            start = int(round(seg.start_s * out_rate))
            if start < 0:
                audio = audio[-start:]
                start = 0
            placed.append((start, audio))
            end = max(end, start + len(audio))
        track = np.zeros(end, np.int16)
        for start, audio in placed:
            track[start : start + len(audio)] = audio
        tracks.append(track)
    pcm = _mix(tracks, nch) if tracks else np.zeros((0, nch), np.int16)
    dtmf = sorted((d for r in renderers for d in r.dtmf), key=lambda d: d[2])
    per_leg = {r.leg.label: r.info for r in renderers}
    return Rendered(
        pcm=pcm,
        sample_rate=out_rate,
        duration_s=len(pcm) / out_rate,
        dtmf=dtmf,
        per_leg=per_leg,
        tracks={r.leg.label: t for r, t in zip(renderers, tracks, strict=True)},
    )
