"""Telephone events (RFC 4733 section 2.3) and comfort noise (RFC 3389 section 3).

A telephone-event payload is ``event(8) | E(1) R(1) volume(6) | duration(16)``; every
packet of one event carries the event's start timestamp, the duration so far, and the
final packet (E set) is usually sent three times. The renderer turns them into one DTMF
entry per (SSRC, timestamp). A CN payload starts with the noise level in -dBov (0..127);
the spectral coefficients that may follow are ignored: the renderer fills the gap up to
the next packet with white noise at that level.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RtpParseError

__all__ = ["DTMF_DIGITS", "TelephoneEvent", "cn_level_dbov", "parse_telephone_event"]

DTMF_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event report."""

    event: int
    end: bool
    volume: int  # -dBm0, 0..63
    duration: int  # RTP timestamp units

    @property
    def digit(self) -> str | None:
        """The DTMF character for events 0..15 (16 = flash is 'flash'), None otherwise."""
        if self.event < 16:
            return DTMF_DIGITS[self.event]
        if self.event == 16:
            return "flash"
        return None

    def serialize(self) -> bytes:
        return bytes([self.event & 0xFF, (0x80 if self.end else 0) | (self.volume & 0x3F)]) + (
            (self.duration & 0xFFFF).to_bytes(2, "big")
        )


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse the first event report of a payload; raises :class:`RtpParseError`."""
    if len(payload) < 4:
        raise RtpParseError(f"telephone-event payload too short ({len(payload)} bytes)")
    return TelephoneEvent(
        event=payload[0],
        end=bool(payload[1] & 0x80),
        volume=payload[1] & 0x3F,
        duration=(payload[2] << 8) | payload[3],
    )


def cn_level_dbov(payload: bytes) -> int:
    """Noise level of a CN payload in -dBov (127 when the payload is empty)."""
    return payload[0] & 0x7F if payload else 127
