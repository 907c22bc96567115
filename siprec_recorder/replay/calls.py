"""Find the calls in a capture: who called whom, and the RTP each side sent.

Theory of operation
-------------------
1. SIP messages are read from every UDP datagram (and TCP segment) that parses as one.
   They are grouped by Call-ID.  A call is an INVITE with an SDP offer and a 2xx with an
   SDP answer (same Call-ID; the first of each, so a B2BUA hop or a retransmission does
   not count twice).  The caller and callee are the From and To URIs of that INVITE.
2. The offer says where the caller receives RTP, the answer where the callee receives
   (``c=`` + first audio ``m=``, RFC 3264 section 5).  Caller -> callee RTP is what was
   sent *to* the answer's address during the call (INVITE to BYE), preferably *from* the
   offer's address (symmetric RTP tells two calls to one port apart); callee -> caller
   the other way round.
3. A capture without usable SIP (RTP only) falls back to the two largest UDP flows that
   look like RTP (version 2, not an RTCP packet type): the largest and its reverse flow
   when there is one, else the next largest.
4. Payload types are named from the SDP ``a=rtpmap`` of either side, then from the
   static table of RFC 3551 section 6; a dynamic type without a map whose payloads are
   all 4 bytes is taken to be ``telephone-event/8000`` (RFC 4733).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from .capture import Capture, Datagram, Endpoint
from .sipmini import MiniMessage, MiniSdp, parse_message, sdp_of, uri_of

__all__ = ["STATIC_PAYLOAD_TYPES", "CapturedCall", "Leg", "RtpRecord", "find_calls", "is_rtp_like"]

#: RFC 3551 section 6 static audio payload types: encoding/clock rate.
STATIC_PAYLOAD_TYPES: dict[int, str] = {
    0: "PCMU/8000",
    3: "GSM/8000",
    4: "G723/8000",
    5: "DVI4/8000",
    6: "DVI4/16000",
    7: "LPC/8000",
    8: "PCMA/8000",
    9: "G722/8000",
    10: "L16/44100/2",
    11: "L16/44100",
    12: "QCELP/8000",
    13: "CN/8000",
    14: "MPA/90000",
    15: "G728/8000",
    16: "DVI4/11025",
    17: "DVI4/22050",
    18: "G729/8000",
}


@dataclass(frozen=True, slots=True)
class RtpRecord:
    """One captured RTP packet: header fields and the payload (padding removed)."""

    time: float
    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Leg:
    """One direction of a call: what ``role`` ('caller' | 'callee') sent."""

    role: str
    aor: str
    src: Endpoint | None
    dst: Endpoint | None
    packets: tuple[RtpRecord, ...]
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)

    @property
    def payload_types(self) -> list[int]:
        """Payload types in order of first use."""
        return list(dict.fromkeys(p.payload_type for p in self.packets))

    @property
    def codec(self) -> str | None:
        """The main encoding ('PCMA/8000', ...): the most used one that is not an event/CN."""
        counts = Counter(p.payload_type for p in self.packets)
        for pt, _n in counts.most_common():
            name = self.rtpmap.get(pt, "")
            if not name.lower().startswith(("telephone-event", "cn/")):
                return name or None
        return None


@dataclass(frozen=True, slots=True)
class CapturedCall:
    call_id: str | None
    caller: str
    callee: str
    legs: tuple[Leg, ...]
    start: float
    end: float

    def leg(self, role: str) -> Leg | None:
        for leg in self.legs:
            if leg.role == role:
                return leg
        return None


def is_rtp_like(payload: bytes) -> bool:
    """Version 2, long enough for its CSRCs, and not an RTCP packet type (200-204...)."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return False
    if 64 <= payload[1] & 0x7F <= 95:  # RTCP packet types 192-223 (RFC 5761 section 4)
        return False
    return len(payload) >= 12 + 4 * (payload[0] & 0x0F)


def _rtp_record(d: Datagram) -> RtpRecord | None:
    data = d.payload
    if not is_rtp_like(data):
        return None
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data, 0)
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if b0 & 0x20 and end > offset:  # padding
        end -= data[-1]
    if end < offset:
        return None
    return RtpRecord(d.time, b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[offset:end])


@dataclass(slots=True)
class _Dialog:
    call_id: str
    invite: MiniMessage | None = None
    invite_time: float = 0.0
    caller_sdp: MiniSdp | None = None  # the INVITE's offer, or the ACK's answer (late offer)
    callee_sdp: MiniSdp | None = None  # the 2xx's answer (or offer)
    end_time: float | None = None


def _endpoint(sdp: MiniSdp | None) -> Endpoint | None:
    if sdp is None:
        return None
    for m in sdp.audio():
        if m.connection and m.port:
            return (m.connection, m.port)
    return None


def _names(*sdps: MiniSdp | None) -> tuple[dict[int, str], dict[int, str]]:
    rtpmap: dict[int, str] = {}
    fmtp: dict[int, str] = {}
    for sdp in sdps:
        if sdp is None:
            continue
        for m in sdp.audio():
            for pt, name in m.rtpmap.items():
                rtpmap.setdefault(pt, name)
            for pt, value in m.fmtp.items():
                fmtp.setdefault(pt, value)
    return rtpmap, fmtp


def _complete_names(rtpmap: dict[int, str], packets: list[RtpRecord]) -> dict[int, str]:
    names = dict(rtpmap)
    for pt in dict.fromkeys(p.payload_type for p in packets):
        if pt in names:
            continue
        if pt in STATIC_PAYLOAD_TYPES:
            names[pt] = STATIC_PAYLOAD_TYPES[pt]
        elif all(len(p.payload) == 4 for p in packets if p.payload_type == pt):
            names[pt] = "telephone-event/8000"
    return names


def _sip_dialogs(capture: Capture) -> list[_Dialog]:
    dialogs: dict[str, _Dialog] = {}
    for d in capture.datagrams:
        if not d.payload[:3].isalpha():
            continue
        message = parse_message(d.payload)
        if message is None or not message.call_id:
            continue
        dialog = dialogs.setdefault(message.call_id, _Dialog(message.call_id))
        cseq = message.cseq
        if message.method == "INVITE" and dialog.invite is None:
            dialog.invite, dialog.invite_time = message, d.time
            dialog.caller_sdp = sdp_of(message)
        elif (
            message.status is not None
            and 200 <= message.status < 300
            and cseq is not None
            and cseq[1] == "INVITE"
            and dialog.invite is not None
            and dialog.callee_sdp is None
        ):
            dialog.callee_sdp = sdp_of(message)
        elif message.method == "ACK" and dialog.caller_sdp is None:
            dialog.caller_sdp = sdp_of(message)
        elif message.method in ("BYE", "CANCEL") and dialog.end_time is None:
            dialog.end_time = d.time
    return [dl for dl in dialogs.values() if dl.invite is not None and dl.callee_sdp is not None]


Flow = tuple[Endpoint, Endpoint]


def _leg_flows(
    flows: dict[Flow, list[RtpRecord]], own_rx: Endpoint | None, peer_rx: Endpoint | None
) -> list[Flow]:
    """Flows one party sent: from where it receives (symmetric RTP), else to the peer."""
    if own_rx is not None:
        sent = [key for key in flows if key[0] == own_rx]
        to_peer = [key for key in sent if key[1] == peer_rx]
        if to_peer or sent:
            return to_peer or sent
    if peer_rx is not None:
        return [key for key in flows if key[1] == peer_rx]
    return []


def find_calls(capture: Capture) -> list[CapturedCall]:
    """The calls in a capture, in order of their INVITE (or one RTP-only call)."""
    records = [(d, r) for d in capture.udp if (r := _rtp_record(d)) is not None]
    last_time = capture.datagrams[-1].time if capture.datagrams else 0.0
    calls: list[CapturedCall] = []
    for dialog in sorted(_sip_dialogs(capture), key=lambda dl: dl.invite_time):
        assert dialog.invite is not None
        caller_rx = _endpoint(dialog.caller_sdp)
        callee_rx = _endpoint(dialog.callee_sdp)
        start = dialog.invite_time
        end = (dialog.end_time + 1.0) if dialog.end_time is not None else last_time
        flows: dict[Flow, list[RtpRecord]] = {}
        for d, r in records:
            if start <= d.time <= end:
                flows.setdefault((d.src, d.dst), []).append(r)
        rtpmap, fmtp = _names(dialog.caller_sdp, dialog.callee_sdp)
        caller = uri_of(dialog.invite.header("from")) or "sip:caller@invalid"
        callee = uri_of(dialog.invite.header("to")) or "sip:callee@invalid"
        chosen: dict[str, list[Flow]] = {}
        used: set[Flow] = set()
        for role, own_rx, peer_rx in (
            ("caller", caller_rx, callee_rx),
            ("callee", callee_rx, caller_rx),
        ):
            keys = [k for k in _leg_flows(flows, own_rx, peer_rx) if k not in used]
            chosen[role] = keys
            used.update(keys)
        # failing that: an unused RTP flow of this call's hosts that lies within the call
        hosts = {e[0] for e in (caller_rx, callee_rx) if e is not None}
        for role in ("caller", "callee"):
            if chosen[role] or not chosen[_other(role)]:
                continue
            spare = [
                k
                for k in flows
                if k not in used
                and len(flows[k]) >= 5
                and (k[0][0] in hosts or k[1][0] in hosts)
                and _within(flows[k], start, end, records)
            ]
            if spare:
                best = max(spare, key=lambda k: len(flows[k]))
                chosen[role] = [best]
                used.add(best)
        legs = []
        for role, aor in (("caller", caller), ("callee", callee)):
            keys = chosen[role]
            if not keys:
                continue
            packets = sorted((r for k in keys for r in flows[k]), key=lambda r: r.time)
            legs.append(
                Leg(
                    role=role,
                    aor=aor,
                    src=keys[0][0],
                    dst=keys[0][1],
                    packets=tuple(packets),
                    rtpmap=_complete_names(rtpmap, packets),
                    fmtp=fmtp,
                )
            )
        if legs:
            calls.append(CapturedCall(dialog.call_id, caller, callee, tuple(legs), start, end))
    if not calls and records:
        fallback = _rtp_only_call(records)
        if fallback is not None:
            calls.append(fallback)
    return calls


def _other(role: str) -> str:
    return "callee" if role == "caller" else "caller"


def _within(
    packets: list[RtpRecord],
    start: float,
    end: float,
    records: list[tuple[Datagram, RtpRecord]],
) -> bool:
    """True when the whole flow (not just the part in the window) is inside the call."""
    ssrcs = {p.ssrc for p in packets}
    times = [r.time for _d, r in records if r.ssrc in ssrcs]
    return bool(times) and min(times) >= start and max(times) <= end


def _rtp_only_call(records: list[tuple[Datagram, RtpRecord]]) -> CapturedCall | None:
    flows: dict[tuple[Endpoint, Endpoint], list[RtpRecord]] = {}
    for d, r in records:
        flows.setdefault((d.src, d.dst), []).append(r)
    ranked = sorted(
        (key for key, packets in flows.items() if len(packets) >= 5),
        key=lambda key: len(flows[key]),
        reverse=True,
    )
    if not ranked:
        return None
    first = ranked[0]
    reverse = (first[1], first[0])
    second = reverse if reverse in flows else (ranked[1] if len(ranked) > 1 else None)
    caller = f"sip:caller@{first[0][0]}"
    callee = f"sip:callee@{first[1][0]}"
    legs = []
    for role, aor, key in (("caller", caller, first), ("callee", callee, second)):
        if key is None:
            continue
        packets = flows[key]
        legs.append(
            Leg(role, aor, key[0], key[1], tuple(packets), _complete_names({}, packets), {})
        )
    times = [r.time for key in (first, second) if key is not None for r in flows[key]]
    return CapturedCall(None, caller, callee, tuple(legs), min(times), max(times))
