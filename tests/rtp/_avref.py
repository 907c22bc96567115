"""Reference encoders/decoders straight from PyAV (FFmpeg), independent of our codecs."""

from __future__ import annotations

import av
import numpy as np


def av_encode(name: str, rate: int, pcm: np.ndarray, *, fmt: str = "s16",
              bit_rate: int | None = None) -> list[bytes]:
    ctx = av.CodecContext.create(name, "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = fmt
    if bit_rate:
        ctx.bit_rate = bit_rate
    ctx.open()
    fs = ctx.frame_size or 160
    out: list[bytes] = []
    for i in range(0, len(pcm) - fs + 1, fs):
        a = pcm[i : i + fs]
        arr = (a / 32768.0).astype(np.float32) if fmt == "flt" else a.astype(np.int16)
        frame = av.AudioFrame.from_ndarray(arr.reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        out += [bytes(p) for p in ctx.encode(frame)]
    return out


def av_decode(name: str, rate: int, packets: list[bytes]) -> np.ndarray:
    ctx = av.CodecContext.create(name, "r")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    chunks = []
    for p in packets:
        for frame in ctx.decode(av.Packet(p)):
            a = frame.to_ndarray().reshape(-1)
            if a.dtype != np.int16:
                a = np.clip(np.rint(a * 32768.0), -32768, 32767).astype(np.int16)
            chunks.append(a)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))
