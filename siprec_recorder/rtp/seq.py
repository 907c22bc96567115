"""Sequence-number and timestamp arithmetic: the one place where RTP counters wrap.

Theory of operation
-------------------
RTP carries a 16-bit sequence number and a 32-bit timestamp (RFC 3550 section 5.1), both
starting at random values and wrapping modulo 2**16 and 2**32. Everything above this module
works with *extended* counters: plain Python ints that keep growing across wraps, so that
``b - a`` is always the true distance between two packets of one sequence context.

An unwrapper remembers the highest extended value seen so far. A new 16-bit value is taken
as the closest extended value to that maximum (RFC 3550 appendix A.1 uses the same idea
with ``MAX_DROPOUT`` / ``MAX_MISORDER``): a forward distance below half the modulus moves
the maximum forward (possibly into the next cycle), anything else is a reordered (older)
packet and maps just below the maximum, possibly into the previous cycle.

The first value is placed in cycle ``cycle_base`` (default 1) rather than cycle 0, so that a
packet reordered before the very first one still gets a non-negative extended value. A new
sequence context (SSRC change, stream restart) starts a fresh unwrapper whose
``cycle_base`` lies beyond the previous maximum, which keeps extended values monotone
across contexts (see :mod:`siprec_recorder.rtp.leg`).
"""

from __future__ import annotations

__all__ = [
    "SEQ_MOD",
    "TS_MOD",
    "SequenceUnwrapper",
    "TimestampUnwrapper",
    "seq_distance",
    "ts_distance",
]

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


def seq_distance(a: int, b: int) -> int:
    """Signed distance from 16-bit sequence number ``a`` to ``b`` (in ``[-32768, 32767]``)."""
    d = (b - a) & 0xFFFF
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def ts_distance(a: int, b: int) -> int:
    """Signed distance from 32-bit timestamp ``a`` to ``b`` (in ``[-2**31, 2**31 - 1]``)."""
    d = (b - a) & 0xFFFFFFFF
    return d - TS_MOD if d >= TS_MOD // 2 else d


class _Unwrapper:
    __slots__ = ("_bits", "_cycle_base", "_half", "_highest", "_mask", "_mod")

    def __init__(self, bits: int, cycle_base: int) -> None:
        if cycle_base < 1:
            raise ValueError("cycle_base must be >= 1")
        self._bits = bits
        self._mod = 1 << bits
        self._mask = self._mod - 1
        self._half = self._mod >> 1
        self._cycle_base = cycle_base
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest extended value returned so far (None before the first)."""
        return self._highest

    def step(self) -> int:
        """Take the value just after the highest as the new highest, and return it.

        For a caller that already knows the packet is the next one (``unwrap`` of
        ``highest + 1`` modulo the modulus gives the same).
        """
        assert self._highest is not None
        self._highest += 1
        return self._highest

    def advance(self, count: int) -> int:
        """Move the highest ``count`` forward (the caller knows the values between); return it."""
        assert self._highest is not None and count >= 0
        self._highest += count
        return self._highest

    def unwrap(self, value: int) -> int:
        """Map a raw counter value to its extended value."""
        value &= self._mask
        highest = self._highest
        if highest is None:
            ext = (self._cycle_base << self._bits) | value
            self._highest = ext
            return ext
        d = (value - highest) & self._mask
        if d < self._half:
            ext = highest + d
            self._highest = ext
            return ext
        return highest - (self._mod - d)


class SequenceUnwrapper(_Unwrapper):
    """Extends 16-bit RTP sequence numbers to monotone ints (RFC 3550 A.1)."""

    __slots__ = ()

    def __init__(self, cycle_base: int = 1) -> None:
        super().__init__(16, cycle_base)


class TimestampUnwrapper(_Unwrapper):
    """Extends 32-bit RTP timestamps to monotone ints."""

    __slots__ = ()

    def __init__(self, cycle_base: int = 1) -> None:
        super().__init__(32, cycle_base)
