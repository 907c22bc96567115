"""Synthetic RTP streams for the media tests (no sockets, fake clock)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import numpy as np

from siprec_recorder.rtp.codecs import alaw_encode, ulaw_encode

__all__ = ["envelope", "sine", "stream_packets", "tone_bursts"]


def sine(freq: float, seconds: float, rate: int = 8000, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def tone_bursts(seconds: float, period: float, on: float, rate: int = 8000,
                freq: float = 1000.0, amp: float = 8000.0) -> np.ndarray:
    """Tone for ``on`` seconds at the start of every ``period``; silence elsewhere."""
    n = int(round(seconds * rate))
    idx = np.arange(n, dtype=np.int64)
    gate = (idx % int(round(period * rate))) < int(round(on * rate))
    out = np.zeros(n, np.int16)
    t = idx[gate].astype(np.float32) / np.float32(rate)
    phase = np.mod(t * np.float32(freq), np.float32(1.0))
    out[gate] = (amp * np.sin(np.float32(2 * np.pi) * phase)).astype(np.int16)
    return out


def envelope(pcm: np.ndarray, rate: int, win_s: float = 0.02) -> np.ndarray:
    """RMS per window."""
    w = max(1, int(rate * win_s))
    x = pcm.astype(np.float64).reshape(-1)
    n = len(x) // w
    return np.sqrt((x[: n * w].reshape(n, w) ** 2).mean(axis=1))


def stream_packets(
    pcm: np.ndarray,
    *,
    start_wall: float,
    encoding: str = "PCMA",
    pt: int = 8,
    ssrc: int = 0x1234,
    seq0: int = 1000,
    ts0: int = 5000,
    ptime: float = 0.02,
    rate: int = 8000,
    clock_ratio: float = 1.0,
    drop: Callable[[int], bool] | None = None,
    jitter: Callable[[int], float] | None = None,
) -> Iterator[tuple[float, bytes]]:
    """(arrival wall time, datagram) for ``pcm`` sent from ``start_wall``.

    ``clock_ratio`` > 1 means the sender's sample clock runs fast: it produces
    ``rate * clock_ratio`` samples per wall second (the RTP clock drifts vs arrival).
    """
    spp = int(round(rate * ptime))
    enc = alaw_encode if encoding == "PCMA" else ulaw_encode
    n = len(pcm) // spp
    coded = enc(pcm[: n * spp])
    header = struct.Struct("!BBHII")
    for i in range(n):
        if drop is not None and drop(i):
            continue
        wall = start_wall + i * ptime / clock_ratio + (jitter(i) if jitter else 0.0)
        hdr = header.pack(0x80, pt | (0x80 if i == 0 else 0), (seq0 + i) & 0xFFFF,
                          (ts0 + i * spp) & 0xFFFFFFFF, ssrc)
        yield wall, hdr + coded[i * spp : (i + 1) * spp]
