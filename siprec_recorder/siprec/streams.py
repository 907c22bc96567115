"""The m-line mapper: what an offer's m-lines do to a session's legs (RFC 3264, RFC 7866 8.1).

Theory of operation: an initial INVITE, a re-INVITE and an UPDATE all carry an SDP offer,
and one function, :func:`map_offer`, says for each of its m-lines what becomes of it:

* ``open`` -- an audio stream we can record and have no live leg for: a new leg (the first
  INVITE's every stream; a re-INVITE's added one, or one re-offered after a ``port 0``);
* ``keep`` -- a stream we already receive: same leg, same port, its codecs and direction as
  the new offer says (a hold is ``keep`` with ``inactive``);
* ``close`` -- a live leg the offer removes (``port 0``) or no longer offers a codec for:
  the leg stops receiving, what it received stays in the recording;
* ``refuse`` -- anything else (video, an unknown codec, a stream never opened): port 0.

An m-line is matched to a leg by label first, then by position (RFC 7866 8.1.8: the SRC
keeps the labels; some SRCs renumber the m-lines). The counts of ``open`` and ``close`` are
what the source's port budget is checked against (:meth:`.admission.Admission.check_change`)
before any port is opened, so a refused offer changes nothing.

:func:`choose_leg` is the part of opening a leg that decides (its label, the SRTP suite, the
payload types it decodes, its direction); :func:`refresh_leg` the part of keeping one. The
sockets are the driver's. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .answer import AcceptedStream
from .session import Leg, OfferedStream

__all__ = [
    "LegChoice",
    "StreamFate",
    "StreamPlan",
    "accepted",
    "choose_leg",
    "count",
    "map_offer",
    "refresh_leg",
    "refused",
]


class StreamFate(Enum):
    OPEN = "open"
    KEEP = "keep"
    CLOSE = "close"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What becomes of one offered m-line; ``leg`` is the live leg it matched, if any."""

    stream: OfferedStream
    fate: StreamFate
    leg: Leg | None = None


def _match(legs: Sequence[Leg], st: OfferedStream) -> Leg | None:
    if st.label is not None:
        for leg in legs:
            if leg.label == st.label:
                return leg
    for leg in legs:
        if leg.index == st.index:
            return leg
    return None


def map_offer(streams: Sequence[OfferedStream], legs: Sequence[Leg] = ()) -> list[StreamPlan]:
    """The fate of each offered m-line, in the offer's order, given the session's ``legs``."""
    plans = []
    for st in streams:
        leg = _match(legs, st)
        live = leg is not None and leg.endpoint is not None
        recordable = st.codec is not None and st.port != 0
        if live:
            fate = StreamFate.KEEP if recordable else StreamFate.CLOSE
        else:
            fate = StreamFate.OPEN if recordable else StreamFate.REFUSE
        plans.append(StreamPlan(st, fate, leg))
    return plans


def count(plans: Sequence[StreamPlan], fate: StreamFate) -> int:
    """How many m-lines of ``plans`` meet ``fate``."""
    return sum(1 for p in plans if p.fate is fate)


@dataclass(frozen=True, slots=True)
class LegChoice:
    """How a new leg receives its stream: everything but the socket."""

    label: str
    srtp: tuple[str, str] | None  # (suite, the offer's key params) to decrypt with
    crypto_answer: str | None  # our a=crypto line (a key of our own, RFC 4568 section 6.1)
    decode_maps: dict[int, tuple[str, int, str | None]]  # what the receiver decodes
    rtpmaps: dict[int, tuple[str, int, str | None]]  # what the leg's manifest keeps
    direction: str


def choose_leg(
    st: OfferedStream, used_labels: set[str], srtp_suites: Sequence[str]
) -> LegChoice | None:
    """The leg for an ``open`` m-line (None: refuse it; no SRTP suite we take).

    Adds the leg's label to ``used_labels`` (a label two m-lines share is made unique).
    """
    c = st.codec
    if c is None:
        return None
    srtp = None
    crypto_answer = None
    if "SAVP" in st.proto.upper():
        chosen = next(
            (cr for suite in srtp_suites for cr in st.crypto if cr[1].upper() == suite), None
        )
        if chosen is None:
            return None
        from ..rtp.srtp import make_answer_crypto

        tag, suite, key_params = chosen
        crypto_answer = make_answer_crypto(tag, suite)[0]
        srtp = (suite, key_params)
    label = st.label if st.label is not None else str(st.index + 1)
    if label in used_labels:
        label = f"{label}.{st.index}"
    used_labels.add(label)
    decode_maps = {pt: (enc, rate, st.fmtps.get(pt)) for pt, (enc, rate, _ch) in st.rtpmaps.items()}
    rtpmaps: dict[int, tuple[str, int, str | None]] = {
        c.payload_type: (c.encoding, c.clock_rate, c.fmtp)
    }
    for pt, rate, fmtp in c.dtmf:
        rtpmaps[pt] = ("telephone-event", rate, fmtp)
    for pt in c.comfort_noise:
        rtpmaps[pt] = ("CN", c.clock_rate, None)
    # The SRC may switch among the codecs it offered: keep them all for decoding.
    for pt, (enc, rate, _ch) in st.rtpmaps.items():
        rtpmaps.setdefault(pt, (enc, rate, st.fmtps.get(pt)))
    return LegChoice(label, srtp, crypto_answer, decode_maps, rtpmaps, _direction(st))


def refresh_leg(leg: Leg, st: OfferedStream) -> None:
    """A ``keep`` m-line: the leg takes the new offer's codecs and direction."""
    c = st.codec
    assert c is not None
    leg.rtpmaps.setdefault(c.payload_type, (c.encoding, c.clock_rate, c.fmtp))
    for pt, (enc, rate, _ch) in st.rtpmaps.items():
        if pt not in leg.rtpmaps or leg.rtpmaps[pt][0].upper() != enc.upper():
            leg.rtpmaps[pt] = (enc, rate, st.fmtps.get(pt))
    leg.codec = c.encoding
    leg.direction = _direction(st)


def _direction(st: OfferedStream) -> str:
    # We only receive: a stream the SRC does not send (hold) is inactive (RFC 3264 6.1).
    return "inactive" if st.direction in ("inactive", "recvonly") else "recvonly"


def accepted(leg: Leg, st: OfferedStream) -> AcceptedStream:
    """Our answer to an m-line a live leg receives."""
    return AcceptedStream(
        port=leg.port,
        proto=st.proto,
        codec=st.codec,
        label=st.label,
        direction=leg.direction,
        crypto=leg.crypto_answer,
        rtcp_mux=st.rtcp_mux,
        media=st.media,
    )


def refused(st: OfferedStream) -> AcceptedStream:
    """The answer to an offered m-line we do not take: port 0, its first format echoed."""
    return AcceptedStream(
        port=0,
        proto=st.proto,
        codec=None,
        label=st.label,
        direction="inactive",
        media=st.media,
        refused_format=st.formats[0] if st.formats else "0",
    )
