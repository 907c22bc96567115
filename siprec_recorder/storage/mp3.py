"""MP3 writing (LAME via ``lameenc``) and reading (FFmpeg via PyAV, for tests and checks).

Theory of operation
-------------------
:func:`encode_mp3` takes int16 PCM shaped ``(n, channels)`` (1 or 2 channels) at the rate the
renderer produced (8 kHz for narrowband calls, 16 kHz for wideband; any rate LAME supports
works) and encodes CBR MP3 in chunks, so memory stays flat for long calls. The output rate is
pinned to the input rate: left alone, LAME picks its own output rate from the bitrate (16 kHz
stereo at 16 kbit/s comes out at 8 kHz). 8 kHz is MPEG-2.5 and 16 kHz MPEG-2, both with
576-sample frames and bitrates of 8 to 160 kbit/s; the bitrate is clamped into that range.

Encoder delay and padding: LAME delays the signal by 576 samples and a decoder adds 529 more,
and the last frame is padded; at 8 kHz that is about 0.17 s of extra audio on every file,
5 % of a 3 s call. ``lameenc`` returns bare frames without the "Info" tag that records these
numbers, so :func:`encode_mp3` prepends one (the Xing/Info header with the LAME extension,
written from the published LAME tag layout, its CRC included). Decoders that read the tag
(FFmpeg and so PyAV, mpg123, most players) then play exactly ``n`` samples, aligned with the
input; the tag frame itself decodes to silence in the few decoders that ignore it. (Measured
exception: FFmpeg does not trim inputs shorter than about 50 samples, 6 ms at 8 kHz.)
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import lameenc
import numpy as np
import numpy.typing as npt

from siprec_recorder.errors import LocalProtocolError

__all__ = ["ENCODER_DELAY", "decode_mp3", "encode_mp3", "mp3_frames"]

ENCODER_DELAY = 576  # LAME's encoder delay in samples (the decoder adds 529 more)
_CHUNK_SAMPLES = 1 << 16

# Bitrates (kbit/s) by index, for MPEG-1 and for MPEG-2 / 2.5 (Layer III).
_BITRATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_LSF = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
# Sampling rates by version bits (0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1) and index.
_RATES = {
    0: (11025, 12000, 8000),
    2: (22050, 24000, 16000),
    3: (44100, 48000, 32000),
}


def _crc16_arc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _frame_info(header: bytes) -> tuple[int, int, int, int, int]:
    """``(version bits, bitrate kbit/s, sample rate, frame size in bytes, channels)``."""
    (h,) = struct.unpack(">I", header[:4])
    if h >> 21 != 0x7FF or (h >> 17) & 3 != 1:
        raise LocalProtocolError("not an MPEG Layer III frame header")
    version = (h >> 19) & 3
    if version == 1:
        raise LocalProtocolError("reserved MPEG version")
    bitrate_index = (h >> 12) & 0xF
    rate_index = (h >> 10) & 3
    if bitrate_index in (0, 15) or rate_index == 3:
        raise LocalProtocolError("free-format or invalid MPEG frame header")
    table = _BITRATES_V1 if version == 3 else _BITRATES_LSF
    kbps = table[bitrate_index]
    rate = _RATES[version][rate_index]
    padding = (h >> 9) & 1
    coefficient = 144 if version == 3 else 72
    size = coefficient * kbps * 1000 // rate + padding
    channels = 1 if (h >> 6) & 3 == 3 else 2
    return version, kbps, rate, size, channels


def mp3_frames(data: bytes) -> list[tuple[int, int]]:
    """``(offset, size)`` of each frame of a bare MP3 frame stream (as ``lameenc`` writes)."""
    size = _uniform_frame_size(data)
    if size is not None:
        return [(pos, size) for pos in range(0, len(data), size)]
    return _walk_frames(data)


# Header bits that set a frame's size and kind: sync, version, layer (not the CRC flag);
# bitrate, sample rate, padding (not the private bit); channel mode (not mode extension,
# copyright, original or emphasis, which LAME may vary from frame to frame).
_SIZE_MASK = np.array([0xFF, 0xFE, 0xFE, 0xC0], np.uint8)


def _uniform_frame_size(data: bytes) -> int | None:
    """The frame size when ``data`` is whole frames of one size, every header agreeing with
    the first in what sets the size; else None (the caller walks the frames one by one).

    CBR at a bitrate and rate whose frame length is a whole number of bytes (32 kbit/s at 8
    or 16 kHz: 288 and 144 bytes) never needs a padding byte, so LAME's frames are all of
    one size: one vectorised comparison replaces a walk of thousands of headers.
    """
    if len(data) < 4:
        return None
    version, kbps, rate, size, _channels = _frame_info(data[:4])
    coefficient = 144 if version == 3 else 72
    if (coefficient * kbps * 1000) % rate or len(data) % size:
        return None
    headers = np.frombuffer(data, np.uint8).reshape(-1, size)[:, :4] & _SIZE_MASK
    if not bool((headers == headers[0]).all()):
        return None
    return size


def _walk_frames(data: bytes) -> list[tuple[int, int]]:
    frames = []
    pos = 0
    while pos + 4 <= len(data):
        size = _frame_info(data[pos : pos + 4])[3]
        frames.append((pos, size))
        pos += size
    return frames


def _info_tag_frame(first_header: bytes, n_frames: int, audio_bytes: int, n_samples: int) -> bytes:
    """An "Info" (CBR) frame with the LAME extension giving delay and padding."""
    version, kbps, rate, _size, channels = _frame_info(first_header)
    lsf = version != 3
    samples_per_frame = 576 if lsf else 1152
    table = _BITRATES_V1 if version == 3 else _BITRATES_LSF
    coefficient = 72 if lsf else 144
    # The tag CRC covers the frame's first 190 bytes: use a bitrate whose frame holds them.
    index = next(
        i for i in range(1, 15) if table[i] >= kbps and coefficient * table[i] * 1000 // rate >= 192
    )
    (h,) = struct.unpack(">I", first_header[:4])
    h = (h & ~(0xF << 12) & ~(1 << 9)) | (index << 12)  # new bitrate, no padding bit
    size = coefficient * table[index] * 1000 // rate
    side_info = (17 if channels == 2 else 9) if lsf else (32 if channels == 2 else 17)
    end_padding = n_frames * samples_per_frame - ENCODER_DELAY - n_samples
    if not 0 <= end_padding < 4096:
        raise LocalProtocolError(f"unexpected MP3 padding {end_padding}")
    frame = bytearray(size)
    frame[0:4] = struct.pack(">I", h)
    pos = 4 + side_info
    total_bytes = size + audio_bytes
    frame[pos : pos + 16] = b"Info" + struct.pack(">III", 0x3, n_frames, total_bytes)
    pos += 16
    lame = bytearray(36)
    lame[0:9] = b"LAME3.100"
    lame[9] = 0x01  # tag revision 0, VBR method 1 (CBR)
    lame[10] = 0  # lowpass unknown
    # peak (4), radio gain (2), audiophile gain (2): zero = not set
    lame[19] = 0  # encoding flags + ATH type
    lame[20] = min(kbps, 255)  # bitrate
    delays = (ENCODER_DELAY << 12) | end_padding
    lame[21:24] = delays.to_bytes(3, "big")
    lame[24] = 0  # misc
    lame[25] = 0  # mp3 gain
    lame[26:28] = b"\x00\x00"  # preset and surround
    lame[28:32] = struct.pack(">I", total_bytes)  # music length
    lame[32:34] = b"\x00\x00"  # music CRC (not computed)
    frame[pos : pos + 34] = lame[:34]
    crc = _crc16_arc(bytes(frame[: pos + 34]))
    frame[pos + 34 : pos + 36] = struct.pack(">H", crc)
    return bytes(frame)


def encode_mp3(
    pcm: npt.NDArray[np.int16], sample_rate: int, bitrate_kbps: int = 32, *, quality: int = 7
) -> bytes:
    """Encode int16 PCM ``(n, channels)`` (or ``(n,)`` mono) as CBR MP3 with an Info tag.

    ``quality`` is LAME's (0 best/slowest .. 9 fastest). An empty input gives ``b""``.
    """
    array = np.asarray(pcm)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] not in (1, 2):
        raise LocalProtocolError(f"PCM must be shaped (n, 1) or (n, 2), not {array.shape}")
    if array.dtype != np.int16:
        raise LocalProtocolError(f"PCM must be int16, not {array.dtype}")
    n_samples, channels = array.shape
    if n_samples == 0:
        return b""
    array = np.ascontiguousarray(array)
    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(int(sample_rate))
    encoder.set_out_sample_rate(int(sample_rate))
    encoder.set_channels(int(channels))
    table = _BITRATES_V1 if sample_rate >= 32000 else _BITRATES_LSF
    bitrate = min(table[1:], key=lambda b: (abs(b - bitrate_kbps), b))
    encoder.set_bit_rate(int(bitrate))
    encoder.set_quality(int(quality))
    out = io.BytesIO()
    for begin in range(0, n_samples, _CHUNK_SAMPLES):
        out.write(encoder.encode(array[begin : begin + _CHUNK_SAMPLES].tobytes()))
    out.write(encoder.flush())
    audio = out.getvalue()
    size = _uniform_frame_size(audio)
    n_frames = len(audio) // size if size is not None else len(_walk_frames(audio))
    if not n_frames:
        return audio
    tag = _info_tag_frame(audio[:4], n_frames, len(audio), n_samples)
    return tag + audio


def decode_mp3(source: str | Path | bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Decode an MP3 file or bytes to int16 ``(n, channels)`` and its sample rate (PyAV)."""
    import av

    handle: str | io.BytesIO = (
        io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
    )
    chunks: list[npt.NDArray[np.int16]] = []
    rate = 0
    channels = 0
    with av.open(handle, mode="r", format="mp3") as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            data: npt.NDArray[Any] = frame.to_ndarray()
            rate = frame.sample_rate
            if frame.format.is_planar:
                data = data.reshape(len(frame.layout.channels), -1).T
            else:
                data = data.reshape(-1, len(frame.layout.channels))
            channels = data.shape[1]
            if data.dtype.kind == "f":
                data = np.clip(np.round(data * 32768.0), -32768, 32767)
            elif data.dtype.itemsize == 4:
                data = np.right_shift(data, 16)
            chunks.append(data.astype(np.int16))
    if not chunks:
        return np.zeros((0, max(channels, 1)), dtype=np.int16), rate
    return np.concatenate(chunks, axis=0), rate
