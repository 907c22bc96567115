"""The values the index stores: a call that starts, how it ended, a declined call, and their
participants, streams and DTMF digits.

Plain dataclasses with no I/O, so that the session layer builds them without loading SQLAlchemy;
each child type's fields are the names of its table's columns (see :mod:`.sql`). Times are
``datetime`` in UTC; the ``from_dict`` constructors also take epoch seconds or ISO strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.isotime import utc_iso as iso

__all__ = [
    "ANY_NODE",
    "FINISHED_STATES",
    "DeclinedCall",
    "DtmfInfo",
    "DtmfRow",
    "FinishedRecording",
    "NewRecording",
    "ParticipantInfo",
    "ParticipantRow",
    "RecordingNotFound",
    "StreamInfo",
    "StreamRow",
    "iso",
]

ANY_NODE = "*"  # open_recordings() of every node (never a node id: see spool.NODE_ID_RE)
FINISHED_STATES = ("complete", "interrupted", "failed")


def _to_datetime(value: Any) -> datetime | None:
    """Accept a datetime, epoch seconds or an ISO string (with or without ``Z``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise LocalProtocolError(f"not a time: {value!r}")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(slots=True)
class ParticipantInfo:
    """A participant as the index stores it (``number`` already normalised by the caller)."""

    participant_id: str | None = None
    aor: str | None = None
    name: str | None = None
    number: str | None = None
    role: str | None = None  # 'caller' | 'callee' | None
    joined_at: datetime | None = None
    left_at: datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParticipantInfo:
        """Build from a dict (unknown keys ignored; times as datetime, epoch or ISO)."""
        return cls(
            participant_id=d.get("participant_id"),
            aor=d.get("aor"),
            name=d.get("name"),
            number=d.get("number"),
            role=d.get("role"),
            joined_at=_to_datetime(d.get("joined_at")),
            left_at=_to_datetime(d.get("left_at")),
        )


@dataclass(slots=True)
class StreamInfo:
    """One received leg and its statistics (names as in ``rtp`` ``LegStats.as_dict()``)."""

    label: str
    stream_id: str | None = None
    participant_id: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    packets_expected: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    packets_late: int = 0
    packets_duplicate: int = 0
    jitter_ms: float | None = None
    longest_gap_ms: float | None = None
    mos: float | None = None
    srtp_auth_failures: int = 0
    rejected_source: int = 0  # datagrams from another address than the session's, dropped
    rejected_ssrc: int = 0  # RTP of a second sender while the first still sent, dropped
    first_packet_at: datetime | None = None
    last_packet_at: datetime | None = None
    status: str = "ok"  # one of models.STREAM_STATUSES

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StreamInfo:
        """Build from a stats dict (unknown keys ignored; missing counters are 0)."""
        sr = d.get("sample_rate")
        return cls(
            label=str(d.get("label") or ""),
            stream_id=d.get("stream_id"),
            participant_id=d.get("participant_id"),
            codec=d.get("codec"),
            sample_rate=None if sr is None else int(sr),
            packets_expected=int(d.get("packets_expected") or 0),
            packets_received=int(d.get("packets_received") or 0),
            packets_lost=int(d.get("packets_lost") or 0),
            packets_late=int(d.get("packets_late") or 0),
            packets_duplicate=int(d.get("packets_duplicate") or 0),
            jitter_ms=_opt_float(d.get("jitter_ms")),
            longest_gap_ms=_opt_float(d.get("longest_gap_ms")),
            mos=_opt_float(d.get("mos")),
            srtp_auth_failures=int(d.get("srtp_auth_failures") or 0),
            rejected_source=int(d.get("rejected_source") or 0),
            rejected_ssrc=int(d.get("rejected_ssrc") or 0),
            first_packet_at=_to_datetime(d.get("first_packet_at")),
            last_packet_at=_to_datetime(d.get("last_packet_at")),
            status=str(d.get("status") or "ok"),
        )


@dataclass(slots=True)
class DtmfInfo:
    """A DTMF digit on leg ``label``, ``at_s`` seconds from the start of the recording."""

    label: str | None
    digit: str
    at_s: float
    duration_ms: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DtmfInfo:
        dur = d.get("duration_ms")
        return cls(
            label=d.get("label"),
            digit=str(d["digit"]),
            at_s=float(d["at_s"]),
            duration_ms=None if dur is None else int(dur),
        )


@dataclass(slots=True)
class NewRecording:
    """A call that starts being recorded. ``id`` is generated when not given.

    ``retention_until`` defaults to ``start`` plus ``retention_years`` (365.25-day years,
    rounded to whole days, as in the sidecar) when only the latter is given.
    """

    call_id: str
    start: datetime
    recorded_number: str | None = None
    other_number: str | None = None
    direction: str = "unknown"  # 'in' | 'out' | 'unknown'
    siprec_session_id: str | None = None
    participants: Sequence[ParticipantInfo | Mapping[str, Any]] = field(default_factory=list)
    source: str | None = None
    origin: str | None = None  # the SRC's own address behind a trusted proxy (source: the proxy)
    srtp: bool = False
    beep: bool = False
    key_id: str | None = None
    retention_until: datetime | None = None
    retention_years: float | None = None  # used when retention_until is None
    metadata_json: dict[str, Any] | None = None
    id: str | None = None
    node_id: str | None = None  # the recorder node that records it


@dataclass(slots=True)
class FinishedRecording:
    """How a recording ended. ``participants`` ``None`` keeps the stored list.

    ``streams``, ``participants`` and ``dtmf`` take the dataclasses or plain dicts (as
    ``finalize_spool`` returns them; see the ``from_dict`` constructors).
    """

    end: datetime
    duration_s: float
    state: str = "complete"  # 'complete' | 'interrupted' | 'failed'
    reason: str | None = None
    file: str | None = None
    sidecar: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    codec: str | None = "mp3"
    sample_rate: int | None = None
    channels: int | None = None
    streams: Sequence[StreamInfo | Mapping[str, Any]] = field(default_factory=list)
    participants: Sequence[ParticipantInfo | Mapping[str, Any]] | None = None
    dtmf: Sequence[DtmfInfo | Mapping[str, Any]] = field(default_factory=list)
    retention_until: datetime | None = None
    metadata_json: dict[str, Any] | None = None



@dataclass(slots=True)
class DeclinedCall:
    """A call that policy refused to record: who, when, why. No media is kept."""

    call_id: str
    start: datetime
    reason: str
    recorded_number: str | None = None
    other_number: str | None = None
    direction: str = "unknown"
    siprec_session_id: str | None = None
    participants: Sequence[ParticipantInfo | Mapping[str, Any]] = field(default_factory=list)
    source: str | None = None
    origin: str | None = None  # the SRC's own address behind a trusted proxy (source: the proxy)
    metadata_json: dict[str, Any] | None = None
    id: str | None = None


#: Names used by the session layer.
ParticipantRow = ParticipantInfo
StreamRow = StreamInfo
DtmfRow = DtmfInfo


class RecordingNotFound(LocalProtocolError):
    """There is no recording with that id."""
