"""Decoders backed by FFmpeg through PyAV: G.722, G.729/G.729A, Opus, AMR, AMR-WB.

Each instance owns one FFmpeg decoder context (codec state carries across the payloads of a
leg, as it must for G.722 and AMR). Payloads are decoded one FFmpeg packet at a time, offline.
RTP clock vs audio rate: G.722 has an RTP clock of 8000 but 16 kHz audio (RFC 3551 section
4.5.2), Opus always an RTP clock of 48000 (RFC 7587) and is decoded at 48 kHz.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from ..errors import RtpParseError
from .base import PcmArray, concat_run

__all__ = ["PyAvDecoder"]

log = logging.getLogger(__name__)


def _to_int16(arr: Any) -> PcmArray:
    a = np.asarray(arr)
    if a.ndim > 1:
        a = a[0] if a.shape[0] < a.shape[-1] else a[:, 0]
    a = a.reshape(-1)
    if a.dtype == np.int16:
        return a.astype(np.int16, copy=False)
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.rint(a.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    if a.dtype == np.int32:
        return (a.astype(np.int32) >> 16).astype(np.int16)
    return a.astype(np.int16)


class PyAvDecoder:
    """One FFmpeg audio decoder; ``split`` turns an RTP payload into FFmpeg packets."""

    def __init__(
        self,
        encoding: str,
        codec_name: str,
        clock_rate: int,
        sample_rate: int,
        split: Callable[[bytes], list[bytes]] | None = None,
        channels: int = 1,
    ) -> None:
        self.encoding = encoding
        self.codec_name = codec_name
        self.clock_rate = clock_rate
        self.sample_rate = sample_rate
        self._split = split
        ctx: Any = av.CodecContext.create(codec_name, "r")
        ctx.sample_rate = sample_rate
        ctx.layout = "stereo" if channels == 2 else "mono"
        self._ctx = ctx
        self.errors = 0

    def decode(self, payload: bytes) -> PcmArray:
        try:
            packets = self._split(payload) if self._split is not None else [payload]
        except RtpParseError:
            self.errors += 1
            return np.zeros(0, np.int16)
        out: list[PcmArray] = []
        for data in packets:
            try:
                for frame in self._ctx.decode(av.Packet(data)):
                    out.append(_to_int16(frame.to_ndarray()))
            except (av.FFmpegError, ValueError) as exc:  # a corrupt frame: silence there
                self.errors += 1
                if self.errors == 1:
                    log.info("%s: undecodable frame (%s)", self.codec_name, exc)
        if not out:
            return np.zeros(0, np.int16)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def decode_run(self, payloads: Sequence[bytes]) -> tuple[PcmArray, npt.NDArray[np.int64]]:
        return concat_run([self.decode(p) for p in payloads])
