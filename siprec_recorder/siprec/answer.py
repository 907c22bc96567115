"""The SDP answer of a Session Recording Server (RFC 7866 section 8.1.2, RFC 3264).

Theory of operation: an SRC offers one ``sendonly`` m-line per recorded stream (or a single
mixed one), usually with ``a=label``. The answer must contain exactly one m-line per offered
m-line, in the same order (RFC 3264 section 6). For each one we either accept it -- our port,
``recvonly`` (``inactive`` when the offer is ``inactive`` or ``recvonly``), the offered label
echoed, a codec chosen from the offer's own list, and, for SAVP, our own SDES key -- or refuse
it with port 0. This module is pure: ports and keys are handed in, text comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AcceptedStream",
    "CodecChoice",
    "DELAYED_OFFER_FORMATS",
    "SUPPORTED_ENCODINGS",
    "build_answer",
    "build_offer",
    "choose_codec",
]

# Encodings the renderer can turn into audio, in order of preference when an offer lists
# several (wideband first: a recorder keeps the best audio it is given).
SUPPORTED_ENCODINGS: tuple[str, ...] = (
    "G722",
    "AMR-WB",
    "OPUS",
    "PCMA",
    "PCMU",
    "AMR",
    "G729",
    "G729A",
)

DTMF_ENCODINGS = ("TELEPHONE-EVENT",)


@dataclass(frozen=True, slots=True)
class CodecChoice:
    """The payload types we put in the answer for one m-line."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int
    fmtp: str | None
    dtmf: tuple[tuple[int, int, str | None], ...]  # (pt, clock_rate, fmtp) of telephone-event
    comfort_noise: tuple[int, ...]
    # Every offered format we can decode, in the offer's order: (pt, encoding, clock rate,
    # channels, fmtp). The answer lists them all, because rtpengine-based SRCs refuse an
    # answer that drops one of their codecs (RFC 3264 allows a subset; they do not).
    answer_formats: tuple[tuple[int, str, int, int, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class AcceptedStream:
    """What we answer for one offered m-line; ``port`` 0 refuses it."""

    port: int
    proto: str
    codec: CodecChoice | None
    label: str | None
    direction: str  # recvonly | inactive
    crypto: str | None = None  # full a=crypto value, e.g. "1 AES_CM_128_HMAC_SHA1_80 inline:..."
    rtcp_mux: bool = False
    media: str = "audio"
    refused_format: str = "0"  # format echoed on a refused m-line


def choose_codec(
    formats: Sequence[str],
    rtpmaps: dict[int, tuple[str, int, int]],
    fmtps: dict[int, str],
) -> CodecChoice | None:
    """Pick the codec to record from the offer's formats.

    ``rtpmaps`` maps payload type -> (encoding, clock rate, channels), with static types
    already filled in. The most preferred supported encoding wins; when none is supported the
    first audio format of the offer is taken anyway (its payload is kept, not lost) so the
    recording can be marked instead of refused.
    """
    pts: list[int] = []
    for f in formats:
        try:
            pts.append(int(f))
        except ValueError:
            continue
    dtmf = tuple(
        (pt, rtpmaps[pt][1], fmtps.get(pt))
        for pt in pts
        if pt in rtpmaps and rtpmaps[pt][0].upper() in DTMF_ENCODINGS
    )
    cn = tuple(pt for pt in pts if pt in rtpmaps and rtpmaps[pt][0].upper() == "CN")
    media_pts = [
        pt
        for pt in pts
        if not (pt in rtpmaps and rtpmaps[pt][0].upper() in (*DTMF_ENCODINGS, "CN", "RED"))
    ]
    if not media_pts:
        return None
    best: int | None = None
    best_rank = len(SUPPORTED_ENCODINGS)
    for pt in media_pts:
        if pt not in rtpmaps:
            continue
        enc = rtpmaps[pt][0].upper()
        if enc in SUPPORTED_ENCODINGS and SUPPORTED_ENCODINGS.index(enc) < best_rank:
            best, best_rank = pt, SUPPORTED_ENCODINGS.index(enc)
    if best is None:
        best = media_pts[0]
    enc, rate, ch = rtpmaps.get(best, (f"PT{best}", 8000, 1))
    clock_dtmf = tuple(d for d in dtmf if d[1] == rate) or dtmf[:1]
    answer: list[tuple[int, str, int, int, str | None]] = []
    for pt in pts:
        if pt not in rtpmaps or any(a[0] == pt for a in answer):
            continue
        e, r, c = rtpmaps[pt]
        if pt == best or e.upper() in SUPPORTED_ENCODINGS or e.upper() in DTMF_ENCODINGS:
            answer.append((pt, e, r, c, fmtps.get(pt)))
        elif e.upper() == "CN" and pt in cn[:1]:
            answer.append((pt, e, r, c, None))
    return CodecChoice(
        best, enc, rate, ch, fmtps.get(best), clock_dtmf, cn[:1], answer_formats=tuple(answer)
    )


def build_answer(
    *,
    origin_host: str,
    session_id: int,
    session_version: int,
    connection_address: str,
    streams: Sequence[AcceptedStream],
) -> bytes:
    """Serialise the answer SDP. One m-line per entry of ``streams``, same order."""
    ip_ver = "IP6" if ":" in connection_address else "IP4"
    lines = [
        "v=0",
        f"o=siprec-recorder {session_id} {session_version} IN {ip_ver} {origin_host}",
        "s=siprec-recorder",
        f"c=IN {ip_ver} {connection_address}",
        "t=0 0",
    ]
    for s in streams:
        if s.port == 0 or s.codec is None:
            lines.append(f"m={s.media} 0 {s.proto} {s.refused_format}")
            if s.label is not None:
                lines.append(f"a=label:{s.label}")
            continue
        c = s.codec
        if c.answer_formats:
            pts = [f[0] for f in c.answer_formats]
            lines.append(f"m={s.media} {s.port} {s.proto} {' '.join(str(p) for p in pts)}")
            for pt, enc, rate, channels, fmtp in c.answer_formats:
                chan = f"/{channels}" if channels and channels != 1 else ""
                lines.append(f"a=rtpmap:{pt} {enc}/{rate}{chan}")
                if enc.upper() in DTMF_ENCODINGS:
                    lines.append(f"a=fmtp:{pt} {fmtp or '0-15'}")
                elif fmtp:
                    lines.append(f"a=fmtp:{pt} {fmtp}")
        else:
            pts = [c.payload_type, *(d[0] for d in c.dtmf), *c.comfort_noise]
            lines.append(f"m={s.media} {s.port} {s.proto} {' '.join(str(p) for p in pts)}")
            chan = f"/{c.channels}" if c.channels and c.channels != 1 else ""
            lines.append(f"a=rtpmap:{c.payload_type} {c.encoding}/{c.clock_rate}{chan}")
            if c.fmtp:
                lines.append(f"a=fmtp:{c.payload_type} {c.fmtp}")
            for pt, rate, fmtp in c.dtmf:
                lines.append(f"a=rtpmap:{pt} telephone-event/{rate}")
                lines.append(f"a=fmtp:{pt} {fmtp or '0-15'}")
            for pt in c.comfort_noise:
                lines.append(f"a=rtpmap:{pt} CN/{c.clock_rate}")
        if s.crypto:
            lines.append(f"a=crypto:{s.crypto}")
        if s.rtcp_mux:
            lines.append("a=rtcp-mux")
        if s.label is not None:
            lines.append(f"a=label:{s.label}")
        lines.append(f"a={s.direction}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


# What we offer when the SRC sends an INVITE without SDP (delayed offer, RFC 3261 section
# 13.2.1; Cisco CUCM's built-in bridge does this): every codec we decode, plus DTMF.
DELAYED_OFFER_FORMATS: dict[int, tuple[str, int, int]] = {
    8: ("PCMA", 8000, 1),
    0: ("PCMU", 8000, 1),
    9: ("G722", 8000, 1),
    18: ("G729", 8000, 1),
    101: ("telephone-event", 8000, 1),
}


def build_offer(
    *,
    origin_host: str,
    session_id: int,
    session_version: int,
    connection_address: str,
    streams: Sequence[tuple[int, str | None]],
) -> bytes:
    """Our SDP offer in a 2xx to an INVITE without one: ``recvonly`` audio m-lines, one per
    ``(port, label)``, each listing :data:`DELAYED_OFFER_FORMATS`."""
    ip_ver = "IP6" if ":" in connection_address else "IP4"
    lines = [
        "v=0",
        f"o=siprec-recorder {session_id} {session_version} IN {ip_ver} {origin_host}",
        "s=siprec-recorder",
        f"c=IN {ip_ver} {connection_address}",
        "t=0 0",
    ]
    pts = " ".join(str(pt) for pt in DELAYED_OFFER_FORMATS)
    for port, label in streams:
        lines.append(f"m=audio {port} RTP/AVP {pts}")
        for pt, (enc, rate, _ch) in DELAYED_OFFER_FORMATS.items():
            lines.append(f"a=rtpmap:{pt} {enc}/{rate}")
        lines.append("a=fmtp:101 0-15")
        if label is not None:
            lines.append(f"a=label:{label}")
        lines.append("a=recvonly")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")
