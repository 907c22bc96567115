"""Audio decoders for the offline renderer: :func:`get_decoder` picks one per payload type.

Supported: PCMU, PCMA (numpy tables), G722, G729/G729A/G729AB, Opus, AMR, AMR-WB, GSM
(PyAV). Not supported (FFmpeg needs options PyAV 18 cannot set): G726-32, iLBC.
telephone-event and CN are not audio codecs and are handled by the renderer with
:mod:`.events`. Anything else gives None: the renderer marks the leg
``unsupported_codec`` and keeps silence there; the finaliser keeps that leg's packets
beside the MP3 (``siprec.finalize``).
"""

from __future__ import annotations

from .amr import amr_options, to_storage_frames
from .base import Decoder, PcmArray, concat_run
from .events import DTMF_DIGITS, TelephoneEvent, cn_level_dbov, parse_telephone_event
from .g711 import ALAW_TABLE, ULAW_TABLE, G711Decoder, alaw_encode, ulaw_encode
from .pyav import PyAvDecoder

__all__ = [
    "ALAW_TABLE",
    "DTMF_DIGITS",
    "ULAW_TABLE",
    "Decoder",
    "G711Decoder",
    "PcmArray",
    "PyAvDecoder",
    "TelephoneEvent",
    "alaw_encode",
    "cn_level_dbov",
    "concat_run",
    "get_decoder",
    "is_wideband",
    "parse_telephone_event",
    "ulaw_encode",
]


def get_decoder(encoding: str, clock_rate: int, fmtp: str | None = None) -> Decoder | None:
    """A fresh decoder for ``encoding``/``clock_rate`` (SDP rtpmap) or None if unsupported."""
    enc = encoding.strip().upper()
    try:
        if enc in ("PCMU", "PCMA"):
            return G711Decoder(enc, clock_rate or 8000)
        if enc == "G722":
            return PyAvDecoder("G722", "g722", clock_rate or 8000, 16000)
        if enc in ("G729", "G729A", "G729AB", "G729B"):
            return PyAvDecoder(enc, "g729", clock_rate or 8000, 8000)
        if enc == "GSM":
            # RFC 3551 section 4.5.8: 33-octet frames of 20 ms, possibly several per packet.
            return PyAvDecoder("GSM", "gsm", 8000, 8000, split=_split_gsm)
        if enc == "OPUS":
            return PyAvDecoder("OPUS", "opus", 48000, 48000)
        if enc in ("AMR", "AMR-WB"):
            wideband = enc == "AMR-WB"
            octet, supported = amr_options(fmtp)
            if not supported:
                return None

            def split(payload: bytes) -> list[bytes]:
                return to_storage_frames(payload, wideband=wideband, octet_aligned=octet)

            return PyAvDecoder(
                enc,
                "amrwb" if wideband else "amrnb",
                16000 if wideband else 8000,
                16000 if wideband else 8000,
                split=split,
            )
    except Exception:  # FFmpeg without that decoder: unsupported here
        return None
    return None


def _split_gsm(payload: bytes) -> list[bytes]:
    return [payload[i : i + 33] for i in range(0, len(payload) - 32, 33)]


def is_wideband(encoding: str) -> bool:
    """True for codecs whose audio is sampled at 16 kHz or more."""
    return encoding.strip().upper() in ("G722", "AMR-WB", "OPUS")
