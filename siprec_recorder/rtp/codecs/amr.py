"""AMR and AMR-WB RTP payloads (RFC 4867 section 4) to storage-format frames.

Theory of operation
-------------------
An RTP payload is a codec mode request (CMR), a table of contents (one entry per frame:
F = more entries follow, FT = frame type, Q = quality), then the speech frames. In the
octet-aligned mode (``octet-align=1``) the CMR and each ToC entry take one octet and each
frame is padded to whole octets; in the bandwidth-efficient mode (the default) CMR is 4
bits, ToC entries 6 bits and the frames' bits follow back to back, the payload padded at
the end only. The storage format (RFC 4867 section 5, the ``.amr`` file body that FFmpeg's
decoders take one frame per packet) is, per frame, an octet ``0 FT(4) Q 0 0`` and the
frame's bits padded to octets. Interleaving, CRCs and robust sorting are not supported
(:func:`amr_options` says so and the caller treats the stream as unsupported).
"""

from __future__ import annotations

from ..errors import RtpParseError

__all__ = [
    "AMR_NB_BITS",
    "AMR_WB_BITS",
    "amr_options",
    "frame_bits",
    "storage_frame",
    "to_storage_frames",
]

# Speech bits per frame type (RFC 4867 section 3.6 / 3GPP TS 26.101, 26.201); 14/15 = lost/no data.
AMR_NB_BITS: dict[int, int] = {
    0: 95,
    1: 103,
    2: 118,
    3: 134,
    4: 148,
    5: 159,
    6: 204,
    7: 244,
    8: 39,
    14: 0,
    15: 0,
}
AMR_WB_BITS: dict[int, int] = {
    0: 132,
    1: 177,
    2: 253,
    3: 285,
    4: 317,
    5: 365,
    6: 397,
    7: 461,
    8: 477,
    9: 40,
    14: 0,
    15: 0,
}


def amr_options(fmtp: str | None) -> tuple[bool, bool]:
    """(octet_aligned, supported) from an fmtp string."""
    params: dict[str, str] = {}
    for part in (fmtp or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            params[k.strip().lower()] = v.strip()
    octet = params.get("octet-align", "0") == "1"
    unsupported = (
        params.get("crc", "0") == "1"
        or params.get("robust-sorting", "0") == "1"
        or "interleaving" in params
    )
    return octet, not unsupported


def frame_bits(wideband: bool, ft: int) -> int:
    table = AMR_WB_BITS if wideband else AMR_NB_BITS
    bits = table.get(ft)
    if bits is None:
        raise RtpParseError(f"AMR{'-WB' if wideband else ''} frame type {ft} is not valid")
    return bits


def storage_frame(ft: int, q: bool, speech: bytes) -> bytes:
    """One storage-format frame: header octet then the padded speech bits."""
    return bytes([(ft << 3) | (0x04 if q else 0)]) + speech


def to_storage_frames(payload: bytes, *, wideband: bool, octet_aligned: bool) -> list[bytes]:
    """Split an RTP payload into storage-format frames; raises :class:`RtpParseError`."""
    if octet_aligned:
        return _octet_aligned(payload, wideband)
    return _bandwidth_efficient(payload, wideband)


def _octet_aligned(payload: bytes, wideband: bool) -> list[bytes]:
    if len(payload) < 2:
        raise RtpParseError("AMR payload too short")
    pos = 1  # skip CMR
    toc: list[tuple[int, bool]] = []
    while True:
        if pos >= len(payload):
            raise RtpParseError("AMR table of contents truncated")
        entry = payload[pos]
        pos += 1
        toc.append(((entry >> 3) & 0x0F, bool(entry & 0x04)))
        if not entry & 0x80:
            break
    frames = []
    for ft, q in toc:
        size = (frame_bits(wideband, ft) + 7) // 8
        if pos + size > len(payload):
            raise RtpParseError("AMR speech frame truncated")
        frames.append(storage_frame(ft, q, payload[pos : pos + size]))
        pos += size
    return frames


def _bandwidth_efficient(payload: bytes, wideband: bool) -> list[bytes]:
    total = len(payload) * 8
    if total < 10:
        raise RtpParseError("AMR payload too short")
    value = int.from_bytes(payload, "big")

    def take(pos: int, n: int) -> int:
        return (value >> (total - pos - n)) & ((1 << n) - 1)

    pos = 4  # CMR
    toc: list[tuple[int, bool]] = []
    while True:
        if pos + 6 > total:
            raise RtpParseError("AMR table of contents truncated")
        entry = take(pos, 6)
        pos += 6
        toc.append(((entry >> 1) & 0x0F, bool(entry & 0x01)))
        if not entry & 0x20:
            break
    frames = []
    for ft, q in toc:
        bits = frame_bits(wideband, ft)
        if pos + bits > total:
            raise RtpParseError("AMR speech frame truncated")
        nbytes = (bits + 7) // 8
        speech = (take(pos, bits) << (nbytes * 8 - bits)).to_bytes(nbytes, "big") if bits else b""
        frames.append(storage_frame(ft, q, speech))
        pos += bits
    return frames
