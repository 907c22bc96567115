"""The decoder interface shared by every codec of the renderer.

Decoders run offline (in the finaliser's worker), on whole runs of payloads of one leg, in
sequence order. ``decode_run`` returns the concatenated samples plus the number of samples
each payload produced, so the renderer can place every payload at its RTP timestamp with
array arithmetic. A payload that cannot be decoded yields zero samples for itself (the
renderer leaves silence there) instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Decoder", "PcmArray", "concat_run"]

PcmArray = npt.NDArray[np.int16]


@runtime_checkable
class Decoder(Protocol):
    """A stateful decoder for one leg and one payload type."""

    encoding: str
    clock_rate: int  # the RTP clock
    sample_rate: int  # of the decoded PCM

    def decode(self, payload: bytes) -> PcmArray:
        """Decode one payload to int16 mono samples."""
        ...

    def decode_run(self, payloads: Sequence[bytes]) -> tuple[PcmArray, npt.NDArray[np.int64]]:
        """Decode payloads in order: (all samples concatenated, samples per payload)."""
        ...


def concat_run(chunks: list[PcmArray]) -> tuple[PcmArray, npt.NDArray[np.int64]]:
    """Concatenate per-payload chunks, returning (samples, lengths)."""
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    if not chunks:
        return np.zeros(0, np.int16), lengths
    return np.concatenate(chunks).astype(np.int16, copy=False), lengths
