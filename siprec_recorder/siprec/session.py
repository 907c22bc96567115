"""One recording session: what the SRS keeps for one SIPREC dialog.

Theory of operation (RFC 7866 sections 6 and 8): a SIPREC INVITE carries an SDP offer with
one m-line per recorded stream and RFC 7865 metadata saying who sends on which label. A
:class:`RecordingSession` holds, for one SIP dialog, the legs (one per accepted m-line, each a
sans-IO :class:`~siprec_recorder.rtp.leg.LegReceiver` and the endpoint whose socket feeds
it), the metadata as it stands, the participant history (who joined and left when), the
spool the legs' packets go to and the task that sets the spool up. The server opens and
closes those sockets and tasks and decides which offered stream becomes which leg
(:mod:`.server`); this module only holds them.

Offer parsing into :class:`OfferedStream` is pure and lives here so that a re-INVITE can be
matched against the legs we already have: by label first, then by m-line position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..sip.sdp import MediaDescription, SessionDescription
from ..wiretext import escape
from .answer import AcceptedStream, CodecChoice, choose_codec
from .metadata import RecordingMetadata

if TYPE_CHECKING:
    from ..sip.dialog import Dialog
    from ..sip.events import Address
    from .admission import Origin
    from .participants import Party, PartyEvent

__all__ = ["Leg", "OfferedStream", "RecordingSession", "parse_offer"]


@dataclass(frozen=True, slots=True)
class OfferedStream:
    """One m-line of an offer, reduced to what the recorder needs."""

    index: int
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    label: str | None
    direction: str
    rtpmaps: dict[int, tuple[str, int, int]]
    fmtps: dict[int, str]
    crypto: tuple[tuple[str, str, str], ...]  # (tag, suite, key params)
    rtcp_mux: bool
    codec: CodecChoice | None
    address: str | None = None  # where the SRC sends this stream from (c= of the m-line)
    rtcp_port: int | None = None  # a=rtcp (RFC 3605), else port + 1, or port with rtcp-mux


def _media_direction(m: MediaDescription, session_dir: str | None) -> str:
    d = m.direction
    return d if d else (session_dir or "sendrecv")


def _rtcp_port(m: MediaDescription, mux: bool) -> int:
    if mux:
        return m.port
    for name, value in m.attributes:
        if name == "rtcp" and value:
            head = value.split(None, 1)[0]
            if head.isdigit():
                return int(head)
    return m.port + 1


def parse_offer(sdp: SessionDescription) -> list[OfferedStream]:
    """Reduce an SDP offer to :class:`OfferedStream` entries, one per m-line, in order."""
    out: list[OfferedStream] = []
    session_dir = None
    for name, _value in sdp.attributes:
        if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
            session_dir = name
    for i, m in enumerate(sdp.media):
        rtpmaps = {pt: (r.encoding, r.clock_rate, r.channels or 1) for pt, r in m.rtpmaps.items()}
        fmtps = dict(m.fmtp)
        crypto = tuple((str(c.tag), c.suite, c.key_params) for c in m.crypto)
        mux = any(name == "rtcp-mux" for name, _ in m.attributes)
        codec = (
            choose_codec(m.formats, rtpmaps, fmtps)
            if m.media == "audio" and m.port != 0 and m.proto.upper().startswith("RTP/")
            else None
        )
        out.append(
            OfferedStream(
                index=i,
                media=m.media,
                port=m.port,
                proto=m.proto,
                formats=tuple(m.formats),
                label=m.label,
                direction=_media_direction(m, session_dir),
                rtpmaps=rtpmaps,
                fmtps=fmtps,
                crypto=crypto,
                rtcp_mux=mux,
                codec=codec,
                address=m.connection_address,
                rtcp_port=_rtcp_port(m, mux),
            )
        )
    return out


@dataclass(slots=True)
class Leg:
    """A recorded stream: one accepted m-line, its socket and its receiver."""

    index: int
    label: str
    receiver: Any  # rtp.leg.LegReceiver
    endpoint: Any  # rtp.endpoint.RtpEndpoint (None once closed)
    port: int
    rtpmaps: dict[int, tuple[str, int, str | None]]
    codec: str
    srtp: bool
    crypto_answer: str | None
    direction: str
    stream_id: str | None = None
    participant_id: str | None = None
    offered_label: str | None = None  # the a=label of the m-line, as the offer had it

    def manifest(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "port": self.port,
            "rtpmaps": {str(pt): list(v) for pt, v in self.rtpmaps.items()},
            "codec": self.codec,
            "srtp": self.srtp,
            "stream_id": self.stream_id,
            "participant_id": self.participant_id,
        }


@dataclass(slots=True)
class RecordingSession:
    """State of one SIPREC recording session (one dialog)."""

    rec_id: str
    call_id: str
    remote_tag: str
    local_tag: str
    source: Address  # where the SRC (or the trusted proxy in front of it) sent from
    remote_target: str
    remote_uri: str  # the SRC's From (our To of a BYE)
    local_uri: str
    started_at: float
    metadata: RecordingMetadata | None
    participants: list[Party]
    recorded_number: str | None
    other_number: str | None
    direction: str
    beep: bool
    spool: Any  # storage.spool.SpoolSession
    legs: list[Leg] = field(default_factory=list)
    sdp_version: int = 1
    sdp_session_id: int = field(default_factory=lambda: int(time.time()))
    local_cseq: int = 0
    dialog: Dialog | None = None  # route set and CSeq of the requests we send
    acked: bool = False
    invite_pending: bool = False
    ended: bool = False
    participant_history: list[PartyEvent] = field(default_factory=list)
    session_expires: float | None = None
    refreshed_at: float = 0.0
    last_answer: list[AcceptedStream] = field(default_factory=list)
    setup: Any = None  # asyncio.Task creating the spool and the index row
    index_pending: bool = False
    key_id: str | None = None  # encryption at rest: the key this recording is written with
    extend_to_end: bool = False  # the recording runs to the session's end (BYE, CANCEL)
    delayed_offer: bool = False  # INVITE without SDP: our offer went in the 200, answer in ACK
    ports_held: int = 0  # RTP port pairs counted against the source's budget
    origin: Origin | None = None  # the SRC behind a trusted proxy (source is the proxy)

    @property
    def source_host(self) -> str:
        """The host the allowlist and the per-source budgets count this session against."""
        return str(self.origin.host) if self.origin is not None else str(self.source.host)

    def manifest(
        self, *, channels: str, bitrate_kbps: int, retention_years: int, mp3_quality: int = 7
    ) -> dict[str, Any]:
        """The spool manifest: everything a finaliser needs without the live objects."""
        return {
            "rec_id": self.rec_id,
            "call_id": escape(self.call_id, 256),
            "siprec_session_id": self.siprec_session_id,
            "source": f"{self.source.transport}:{self.source.host}:{self.source.port}"
            if hasattr(self.source, "transport")
            else str(self.source),
            "origin": str(self.origin) if self.origin is not None else None,
            "started_at": self.started_at,
            "start": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "recorded_number": self.recorded_number,
            "other_number": self.other_number,
            "direction": self.direction,
            "beep": self.beep,
            "channels": channels,
            "bitrate_kbps": bitrate_kbps,
            "mp3_quality": mp3_quality,
            "retention_years": retention_years,
            "participants": self.participants,
            "participant_history": self.participant_history,
            "metadata": self.metadata.to_json() if self.metadata is not None else None,
            "legs": [leg.manifest() for leg in self.legs],
        }

    @property
    def siprec_session_id(self) -> str | None:
        if self.metadata is None or not self.metadata.sessions:
            return None
        s = self.metadata.sessions[0]
        return str(getattr(s, "session_id", None) or s)

    def last_media_at(self) -> float:
        latest = self.started_at
        for leg in self.legs:
            t = leg.receiver.last_packet_at
            if t is not None and t > latest:
                latest = t
        return latest

    def all_on_hold(self) -> bool:
        return bool(self.legs) and all(leg.direction == "inactive" for leg in self.legs)
