"""Per-leg reception statistics and a simplified E-model MOS.

Theory of operation
-------------------
:class:`LegStats` is fed by :class:`~siprec_recorder.rtp.leg.LegReceiver` on every packet
(a few additions, no allocation) and read once at the end of a call (``as_dict``).

* expected / lost follow RFC 3550 appendix A.3: per sequence context, expected is
  ``highest extended seq - first extended seq + 1``; contexts (SSRC changes, restarts) add
  up. ``lost = expected - received`` (never negative), where ``received`` counts distinct
  packets, late ones included; ``late`` (arrived after the jitter buffer gave their slot
  up) and ``duplicate`` are counted apart.
* interarrival jitter is RFC 3550 appendix A.8, ``J += (|D| - J) / 16`` with the transit
  time computed in seconds (arrival minus ``timestamp / clock_rate``), reported in ms.
* longest_gap_ms is the longest wall-clock silence between two consecutive packets.
* MOS comes from a simplified ITU-T G.107 E-model: ``R = 93.2 - Id - Ie_eff`` with
  ``Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` (G.107 eq. 7-29), codec
  impairment ``Ie`` and robustness ``Bpl`` from G.113 appendix I where listed (values for
  Opus and wideband codecs are rough: G.107 is narrowband), a one-way delay taken as a
  nominal 40 ms network + packetisation + a jitter buffer of twice the jitter, and
  ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)``. R maps to MOS by G.107 annex B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CODEC_IMPAIRMENT", "LegStats", "estimate_mos", "r_to_mos"]

# encoding (upper case) -> (Ie, Bpl)
CODEC_IMPAIRMENT: dict[str, tuple[float, float]] = {
    "PCMU": (0.0, 25.1),
    "PCMA": (0.0, 25.1),
    "G722": (0.0, 25.1),
    "G729": (11.0, 19.0),
    "G729A": (11.0, 19.0),
    "G729AB": (11.0, 19.0),
    "AMR": (5.0, 10.0),
    "AMR-WB": (5.0, 10.0),
    "OPUS": (0.0, 20.0),
    "GSM": (20.0, 10.0),
    "ILBC": (10.0, 32.0),
}
_DEFAULT_IMPAIRMENT = (0.0, 25.1)


def r_to_mos(r: float) -> float:
    """ITU-T G.107 annex B: rating factor R to MOS (conversational quality)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(
    codec: str | None,
    loss_fraction: float,
    jitter_ms: float,
    *,
    packet_ms: float = 20.0,
    burst_ratio: float = 1.0,
) -> float:
    """MOS (1..4.5) from codec, packet loss fraction (0..1) and interarrival jitter."""
    ie, bpl = CODEC_IMPAIRMENT.get((codec or "").upper(), _DEFAULT_IMPAIRMENT)
    ppl = max(0.0, min(1.0, loss_fraction)) * 100.0
    burst = max(1.0, burst_ratio)
    ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst + bpl)
    d = 40.0 + packet_ms + 2.0 * max(0.0, jitter_ms)
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    return round(r_to_mos(93.2 - i_d - ie_eff), 2)


@dataclass(slots=True)
class LegStats:
    """Mutable counters of one leg (updated by the receiver; read with :meth:`as_dict`)."""

    codec: str | None = None
    packets_received: int = 0
    packets_late: int = 0
    packets_duplicate: int = 0
    bad_packets: int = 0
    rtcp_packets: int = 0
    srtp_auth_failures: int = 0
    ssrc_changes: int = 0
    rejected_source: int = 0  # datagrams from an address other than the session's
    rejected_ssrc: int = 0  # RTP of a second sender while the first still sends
    longest_gap_s: float = 0.0
    jitter_s: float = 0.0
    bytes_received: int = 0
    first_packet_at: float | None = None
    last_packet_at: float | None = None
    rtcp_reports: dict[str, Any] = field(default_factory=dict)
    _expected_closed: int = 0
    _ctx_first: int | None = None
    _ctx_highest: int = 0
    _prev_transit: float | None = None

    # -- updates (hot path) -------------------------------------------------------------

    def new_context(self) -> None:
        """A new sequence context starts (SSRC change or restart)."""
        if self._ctx_first is not None:
            self._expected_closed += self._ctx_highest - self._ctx_first + 1
        self._ctx_first = None
        self._prev_transit = None

    def packet(self, ext_seq: int, arrival: float, ts_seconds: float | None) -> None:
        """Count one distinct packet; ``ts_seconds`` None skips the jitter estimate."""
        self.packets_received += 1
        if self._ctx_first is None:
            self._ctx_first = ext_seq
            self._ctx_highest = ext_seq
        elif ext_seq > self._ctx_highest:
            self._ctx_highest = ext_seq
        elif ext_seq < self._ctx_first:
            self._ctx_first = ext_seq
        last = self.last_packet_at
        if last is None:
            self.first_packet_at = arrival
        elif arrival - last > self.longest_gap_s:
            self.longest_gap_s = arrival - last
        if last is None or arrival > last:
            self.last_packet_at = arrival
        if ts_seconds is not None:
            transit = arrival - ts_seconds
            prev = self._prev_transit
            if prev is not None:
                d = transit - prev
                if d < 0:
                    d = -d
                self.jitter_s += (d - self.jitter_s) / 16.0
            self._prev_transit = transit

    def run(
        self, ext_first: int, ext_last: int, arrivals: list[float], transits: list[float] | None
    ) -> None:
        """Count packets ``ext_first..ext_last`` at once: what :meth:`packet` does for each.

        ``transits`` (arrival minus timestamp in seconds, per packet) is None where the
        payload type has no clock rate.
        """
        self.packets_received += len(arrivals)
        if self._ctx_first is None:
            self._ctx_first = ext_first
            self._ctx_highest = ext_last
        else:
            # Increasing values: the last may raise the highest, the first lower the first.
            if ext_last > self._ctx_highest:
                self._ctx_highest = ext_last
            if ext_first < self._ctx_first:
                self._ctx_first = ext_first
        last = self.last_packet_at
        longest = self.longest_gap_s
        for arrival in arrivals:
            if last is None:
                self.first_packet_at = last = arrival
            else:
                if arrival - last > longest:
                    longest = arrival - last
                if arrival > last:
                    last = arrival
        self.last_packet_at = last
        self.longest_gap_s = longest
        if transits is not None:
            prev = self._prev_transit
            jitter = self.jitter_s
            for transit in transits:
                if prev is not None:
                    d = transit - prev
                    if d < 0:
                        d = -d
                    jitter += (d - jitter) / 16.0
                prev = transit
            self._prev_transit = prev
            self.jitter_s = jitter

    # -- results ------------------------------------------------------------------------

    @property
    def packets_expected(self) -> int:
        current = 0 if self._ctx_first is None else self._ctx_highest - self._ctx_first + 1
        return self._expected_closed + current

    @property
    def packets_lost(self) -> int:
        return max(0, self.packets_expected - self.packets_received)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready statistics (the names of docs/contracts.md, plus a few extras)."""
        expected = self.packets_expected
        lost = self.packets_lost
        # Packets that arrived too late to be recorded are lost to the recording.
        effective_loss = (lost + self.packets_late) / expected if expected else 0.0
        jitter_ms = round(self.jitter_s * 1000.0, 2)
        return {
            "packets_expected": expected,
            "packets_received": self.packets_received,
            "packets_lost": lost,
            "packets_late": self.packets_late,
            "packets_duplicate": self.packets_duplicate,
            "jitter_ms": jitter_ms,
            "longest_gap_ms": round(self.longest_gap_s * 1000.0, 1),
            "mos": estimate_mos(self.codec, effective_loss, jitter_ms)
            if self.packets_received
            else None,
            "srtp_auth_failures": self.srtp_auth_failures,
            "bad_packets": self.bad_packets,
            "rtcp_packets": self.rtcp_packets,
            "ssrc_changes": self.ssrc_changes,
            "rejected_source": self.rejected_source,
            "rejected_ssrc": self.rejected_ssrc,
            **({"rtcp": dict(self.rtcp_reports)} if self.rtcp_reports else {}),
        }
