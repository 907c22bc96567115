"""Index rows built from what the recording layer has: a spool manifest, a render result.

Theory of operation: a recording in progress is described by its spool manifest (the dict
``siprec.session.RecordingSession.manifest`` writes and recovery reads back), so the row of
a new recording, live or recovered after a crash, is built from that one shape; its end is
the manifest plus the dict ``siprec.finalize.finalize_spool`` returns. A refused call has no
manifest: its row is built from the few facts the refusal knows. Pure functions, no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .index import DeclinedCall, FinishedRecording, NewRecording, ParticipantInfo, StreamInfo

__all__ = [
    "declined_call",
    "failed_recording",
    "finished_recording",
    "new_recording",
    "participant_rows",
]


def participant_rows(participants: Iterable[Mapping[str, Any]]) -> list[ParticipantInfo]:
    """The participants of a manifest (times as ISO strings, possibly malformed) as rows."""
    out = []
    for p in participants:
        out.append(
            ParticipantInfo(
                participant_id=p.get("participant_id"),
                aor=p.get("aor"),
                name=p.get("name"),
                number=p.get("number"),
                joined_at=_when(p.get("joined_at")),
                left_at=_when(p.get("left_at")),
            )
        )
    return out


def _when(value: Any) -> datetime | None:
    # A time from an SRC's metadata that does not parse is dropped, not fatal to the row.
    if not value:
        return None
    try:
        d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def new_recording(manifest: Mapping[str, Any], *, node_id: str | None) -> NewRecording:
    """The ``recording`` row of the session a spool manifest describes."""
    m = manifest
    return NewRecording(
        node_id=node_id,
        id=m["rec_id"],
        call_id=m.get("call_id") or "",
        siprec_session_id=m.get("siprec_session_id"),
        start=datetime.fromtimestamp(float(m["started_at"]), UTC),
        direction=m.get("direction") or "unknown",
        recorded_number=m.get("recorded_number"),
        other_number=m.get("other_number"),
        source=m.get("source"),
        origin=m.get("origin"),
        beep=bool(m.get("beep")),
        srtp=any(leg.get("srtp") for leg in m.get("legs", [])),
        participants=participant_rows(m.get("participants", [])),
        metadata_json=m.get("metadata"),
        retention_years=m.get("retention_years"),
        key_id=m.get("key_id"),
    )


def finished_recording(manifest: Mapping[str, Any], result: Mapping[str, Any]) -> FinishedRecording:
    """How the recording of ``manifest`` ended, from the finaliser's ``result``."""
    end = datetime.fromisoformat(str(result["end"]).replace("Z", "+00:00"))
    started_at = float(manifest["started_at"])

    def absolute(stream: Mapping[str, Any]) -> dict[str, Any]:
        # The render gives packet times in seconds from the session's start.
        out = dict(stream)
        for key in ("first_packet_at", "last_packet_at"):
            if out.get(key) is not None:
                out[key] = started_at + float(out[key])
        return out

    return FinishedRecording(
        state=result["state"],
        reason=result.get("reason"),
        end=end,
        duration_s=float(result["duration_s"]),
        file=result.get("file"),
        sidecar=result.get("sidecar"),
        sha256=result.get("sha256"),
        size_bytes=int(result.get("size_bytes") or 0),
        codec="mp3",
        sample_rate=int(result.get("sample_rate") or 0),
        channels=int(result.get("channels") or 0),
        streams=[StreamInfo.from_dict(absolute(st)) for st in result["streams"]],
        participants=participant_rows(manifest.get("participants", [])),
        dtmf=result.get("dtmf", []),
    )


def failed_recording(end: float, reason: str) -> FinishedRecording:
    """The end of an answered call whose audio had nowhere to go (no spool)."""
    return FinishedRecording(
        end=datetime.fromtimestamp(end, UTC),
        duration_s=0.0,
        state="failed",
        reason=reason,
        codec=None,
    )


def declined_call(
    *,
    call_id: str,
    at: float,
    reason: str,
    source: str,
    origin: str | None,
    participants: Iterable[Mapping[str, Any]],
    recorded_number: str | None,
    other_number: str | None,
    direction: str,
) -> DeclinedCall:
    """The row of a call refused before it became a recording (policy, budget, CANCEL)."""
    return DeclinedCall(
        id=uuid.uuid4().hex,
        call_id=call_id,
        start=datetime.fromtimestamp(at, UTC),
        direction=direction,
        recorded_number=recorded_number,
        other_number=other_number,
        source=source,
        origin=origin,
        reason=reason,
        participants=participant_rows(participants),
    )
