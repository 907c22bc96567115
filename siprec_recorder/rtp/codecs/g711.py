"""G.711 A-law and u-law (ITU-T G.711), decoded with 256-entry numpy lookup tables.

The tables are computed once from the G.711 expansion rules: u-law inverts the octet,
takes sign, 3-bit exponent and 4-bit mantissa, ``((mantissa << 3) + 0x84) << exponent)
- 0x84``; A-law inverts the even bits (XOR 0x55), and a segment ``e`` > 0 gives
``((mantissa << 4) + 0x108) << (e - 1)``, segment 0 ``(mantissa << 4) + 8``; in A-law a set
sign bit means positive. One sample per octet, so a run decodes with a single fancy-index
over all payloads joined together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .base import PcmArray

__all__ = ["ALAW_TABLE", "ULAW_TABLE", "G711Decoder", "alaw_encode", "ulaw_encode"]


def _ulaw_table() -> PcmArray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> PcmArray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_TABLE: PcmArray = _ulaw_table()
ALAW_TABLE: PcmArray = _alaw_table()


def _encoder_for(table: PcmArray) -> npt.NDArray[np.uint8]:
    # For each 16-bit value, the code whose expansion is nearest (ties: smaller code).
    order = np.argsort(table.astype(np.int32), kind="stable")
    values = table.astype(np.int32)[order]
    grid = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(values, grid), 1, 255)
    left = values[idx - 1]
    right = values[idx]
    pick = np.where(grid - left <= right - grid, idx - 1, idx)
    return order[pick].astype(np.uint8)


_ULAW_ENC: npt.NDArray[np.uint8] | None = None
_ALAW_ENC: npt.NDArray[np.uint8] | None = None


def ulaw_encode(pcm: PcmArray) -> bytes:
    """Encode int16 samples to u-law (nearest code; used by tests and tools)."""
    global _ULAW_ENC
    if _ULAW_ENC is None:
        _ULAW_ENC = _encoder_for(ULAW_TABLE)
    return bytes(_ULAW_ENC[pcm.astype(np.int32) + 32768])


def alaw_encode(pcm: PcmArray) -> bytes:
    """Encode int16 samples to A-law (nearest code; used by tests and tools)."""
    global _ALAW_ENC
    if _ALAW_ENC is None:
        _ALAW_ENC = _encoder_for(ALAW_TABLE)
    return bytes(_ALAW_ENC[pcm.astype(np.int32) + 32768])


class G711Decoder:
    """PCMU / PCMA: stateless, vectorised."""

    __slots__ = ("_table", "clock_rate", "encoding", "sample_rate")

    def __init__(self, encoding: str, clock_rate: int = 8000) -> None:
        self.encoding = encoding.upper()
        self._table = ULAW_TABLE if self.encoding == "PCMU" else ALAW_TABLE
        self.clock_rate = clock_rate
        self.sample_rate = clock_rate

    def decode(self, payload: bytes) -> PcmArray:
        # take() with native indices: about twice as fast as indexing with the uint8 octets.
        return self._table.take(np.frombuffer(payload, dtype=np.uint8).astype(np.intp))

    def decode_run(self, payloads: Sequence[bytes]) -> tuple[PcmArray, npt.NDArray[np.int64]]:
        lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
        return self.decode(b"".join(payloads)), lengths
