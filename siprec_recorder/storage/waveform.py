"""Waveform peaks of a call, computed once when the call is finalised.

The portal draws the call from these numbers instead of decoding the MP3 in the browser:
one list per channel (per leg in stereo), each value the loudest sample of its slice of
time scaled to 0..100. At most :data:`MAX_POINTS` values per channel, so a long call's
sidecar stays small.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_POINTS", "POINTS_PER_SECOND", "waveform_peaks"]

POINTS_PER_SECOND = 20
MAX_POINTS = 2000


def waveform_peaks(pcm: np.ndarray[Any, Any], sample_rate: int) -> dict[str, Any]:
    """``{"points_per_second", "channels": [[0..100, ...], ...]}`` for int16 ``pcm``
    (samples x channels)."""
    data = pcm.reshape(len(pcm), -1) if pcm.ndim != 2 else pcm
    n = len(data)
    seconds = n / sample_rate if sample_rate else 0.0
    points = int(min(MAX_POINTS, max(1, round(seconds * POINTS_PER_SECOND))))
    edges = np.linspace(0, n, points + 1).astype(np.int64)
    channels: list[list[int]] = []
    magnitude = np.abs(data.astype(np.int32))
    for ch in range(data.shape[1]):
        col = magnitude[:, ch]
        if n == 0:
            channels.append([0] * points)
            continue
        starts = np.minimum(edges[:-1], n - 1)
        peaks = np.maximum.reduceat(col, starts)
        channels.append([int(v) for v in np.round(peaks * 100 / 32768)])
    return {"points_per_second": points / seconds if seconds else 0.0, "channels": channels}
