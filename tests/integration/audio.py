"""Reference audio for integration tests, decoded independently of the recorder's codecs.

The reference decode of sent G.711 payloads uses PyAV's (FFmpeg's) pcm_alaw / pcm_mulaw
decoders, and MP3s are decoded with PyAV too, so a bug in our own codec tables or timeline
cannot hide itself. Comparison is by envelope: RMS in 20 ms windows, correlated at the best
lag within a bound (the MP3 encoder adds about one frame of delay, and the first packet arrives
a little after the 200 OK).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import av
import numpy as np

__all__ = ["decode_g711", "decode_mp3", "envelope", "envelope_match", "place_on_timeline"]


def decode_g711(payload: bytes, encoding: str) -> np.ndarray:
    """Decode A-law/u-law bytes to float samples in [-1, 1] with FFmpeg's decoder."""
    name = {"PCMA": "pcm_alaw", "PCMU": "pcm_mulaw"}[encoding.upper()]
    ctx = av.CodecContext.create(name, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    out: list[np.ndarray] = []
    for frame in ctx.decode(av.Packet(payload)):
        out.append(frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def decode_mp3(path: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Decode an MP3 to float samples shaped (n, channels) and its sample rate."""
    src = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(src) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks: list[np.ndarray] = []
        channels = stream.codec_context.channels
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                arr = arr.T
            else:
                arr = arr.reshape(-1, channels)
            chunks.append(arr.astype(np.float32))
    pcm = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
    if pcm.dtype != np.float32 or np.abs(pcm).max(initial=0) > 2:
        pcm = pcm / 32768.0
    return pcm, rate


def place_on_timeline(
    packets: Iterable[tuple[float, bytes]], encoding: str, rate: int = 8000
) -> np.ndarray:
    """Lay (offset seconds, payload) packets on a timeline at their offsets."""
    pkts = sorted(packets)
    if not pkts:
        return np.zeros(0, np.float32)
    end = max(int(round(t * rate)) + len(p) for t, p in pkts)
    out = np.zeros(end, np.float32)
    for t, p in pkts:
        start = int(round(t * rate))
        s = decode_g711(p, encoding)
        out[start : start + len(s)] = s
    return out


def envelope(x: np.ndarray, rate: int, win_s: float = 0.02) -> np.ndarray:
    """RMS per window."""
    n = max(1, int(rate * win_s))
    m = len(x) // n
    if m == 0:
        return np.zeros(0)
    frames = x[: m * n].astype(np.float64).reshape(m, n)
    return np.sqrt((frames**2).mean(axis=1))


def envelope_match(
    got: np.ndarray, got_rate: int, expected: np.ndarray, exp_rate: int, max_lag_s: float = 0.5
) -> tuple[float, float]:
    """Best Pearson correlation of the two envelopes within +-max_lag_s, and that lag (s)."""
    a = envelope(got, got_rate)
    b = envelope(expected, exp_rate)
    max_lag = int(max_lag_s / 0.02)
    best = (-1.0, 0.0)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            x, y = a[lag:], b
        else:
            x, y = a, b[-lag:]
        n = min(len(x), len(y))
        if n < 10:
            continue
        xs, ys = x[:n], y[:n]
        if xs.std() == 0 or ys.std() == 0:
            continue
        c = float(np.corrcoef(xs, ys)[0, 1])
        if c > best[0]:
            best = (c, lag * 0.02)
    return best


def mix(legs: Sequence[np.ndarray]) -> np.ndarray:
    n = max((len(x) for x in legs), default=0)
    out = np.zeros(n, np.float32)
    for x in legs:
        out[: len(x)] += x
    return out
