"""Who is in a recorded call: participants from metadata (RFC 7865) or From/To, and history.

Theory of operation: a SIPREC INVITE says who takes part in its RFC 7865 metadata; an SRC
that sends none (RFC 7866 allows it only as a fallback; simple SRCs do it) is read from its
From (the caller) and To (the callee). :func:`participants_of` gives either as
:class:`Party` entries, the form the manifest, the index and the portal keep.
:func:`roles` says which number is recorded (the policy's answer, else the first number),
which is the other party, and so the direction.

A re-INVITE or UPDATE may bring new metadata (a transfer, a conference):
:func:`apply_update` merges it and records who joined and who left when (parties matched by
number before participant id: some SRCs give the same party a new id in every document).
:func:`assign_senders` says which party sends on which leg. Pure: no I/O, no clock (the time
is an argument).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

from ..phone import normalize_number, user_part
from ..sip.headers import Headers
from ..wiretext import escape
from .metadata import RecordingMetadata

if TYPE_CHECKING:
    from .session import Leg

__all__ = [
    "Decision",
    "Party",
    "PartyEvent",
    "apply_update",
    "assign_senders",
    "joined",
    "participants_of",
    "participants_from",
    "roles",
]


class Party(TypedDict):
    """One participant of a recorded call (times ISO 8601 strings, as in the manifest)."""

    participant_id: str | None
    aor: str | None
    name: str | None
    number: str | None
    send: list[str]  # the labels of the legs this party sends on
    joined_at: str | None
    left_at: str | None


class PartyEvent(TypedDict):
    """An entry of a session's participant history."""

    participant_id: str | None
    aor: str | None
    number: str | None
    event: str  # "joined" | "left"
    at: str | None


class Decision(Protocol):
    """What the policy says of a call (``policy.engine.Decision``)."""

    @property
    def record(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def recorded_number(self) -> str | None: ...
    @property
    def emergency(self) -> bool: ...
    @property
    def beep(self) -> bool: ...


_URI_RE = re.compile(r"<([^>]*)>")


def uri_of(name_addr: str | None) -> str:
    """The URI of a name-addr or addr-spec header value ("" when there is none)."""
    if not name_addr:
        return ""
    m = _URI_RE.search(name_addr)
    if m:
        return m.group(1).strip()
    return name_addr.split(";", 1)[0].strip()


def _display_of(name_addr: str | None) -> str | None:
    if not name_addr or "<" not in name_addr:
        return None
    name = name_addr.split("<", 1)[0].strip().strip('"').strip()
    return name or None


def participants_from(md: RecordingMetadata, country_code: str) -> list[Party]:
    """The participants a metadata document lists."""
    return [
        Party(
            participant_id=p.participant_id,
            aor=p.aor,
            name=p.name,
            number=normalize_number(p.aor, country_code=country_code) if p.aor else None,
            send=[],
            joined_at=p.associate_time.isoformat() if p.associate_time else None,
            left_at=p.disassociate_time.isoformat() if p.disassociate_time else None,
        )
        for p in md.participants
    ]


def participants_of(
    headers: Headers, md: RecordingMetadata | None, country_code: str
) -> list[Party]:
    """The participants of a new session: the metadata's, else the From and To."""
    if md is not None and md.participants:
        return participants_from(md, country_code)
    out: list[Party] = []
    for role, header in (("caller", "From"), ("callee", "To")):
        value = headers.get(header)
        uri = uri_of(value)
        if not uri:
            continue
        name = _display_of(value)
        out.append(
            Party(
                participant_id=role,
                aor=escape(uri, 512),
                name=escape(name, 256) if name is not None else None,
                number=normalize_number(uri, country_code=country_code),
                send=[],
                joined_at=None,
                left_at=None,
            )
        )
    return out


def roles(
    participants: Sequence[Party], decision: Decision | None
) -> tuple[str | None, str | None, str]:
    """``(recorded number, other number, direction)`` of a call with these participants."""
    numbers = [p["number"] or (user_part(p["aor"]) if p["aor"] else None) for p in participants]
    recorded = decision.recorded_number if decision is not None else None
    if recorded is None:
        recorded = next((n for n in numbers if n), None)
    other = next((n for n in numbers if n and n != recorded), None)
    direction = "unknown"
    if recorded is not None and numbers:
        direction = "out" if numbers[0] == recorded else "in"
    return recorded, other, direction


def _event(p: Party, kind: str, at: str | None) -> PartyEvent:
    return PartyEvent(
        participant_id=p["participant_id"], aor=p["aor"], number=p["number"], event=kind, at=at
    )


def joined(participants: Sequence[Party], now: float) -> list[PartyEvent]:
    """The history of a new session: everyone joined at its start."""
    at = datetime.fromtimestamp(now, UTC).isoformat()
    return [_event(p, "joined", at) for p in participants]


def apply_update(
    before: Sequence[Party],
    update: RecordingMetadata,
    merged: RecordingMetadata,
    now: float,
    country_code: str,
) -> tuple[list[Party], list[PartyEvent]]:
    """The participants after a metadata ``update`` (``merged`` into the session's), and
    the history entries it adds.

    A *complete* update that no longer lists an earlier party means that party left
    (transfer, redirect, the end of a 3-way call); the party stays in the recording with
    ``left_at`` set.
    """
    at = datetime.fromtimestamp(now, UTC).isoformat()
    events: list[PartyEvent] = []

    def key(p: Party) -> str:
        return str(p["number"] or p["participant_id"])

    old_by_key = {key(p): p for p in before}
    listed = {key(p) for p in participants_from(update, country_code)}
    fresh = participants_from(merged, country_code)
    seen: set[str] = set()
    for p in fresh:
        k = key(p)
        seen.add(k)
        old = old_by_key.get(k)
        if old is None:
            events.append(_event(p, "joined", at))
            continue
        if old["left_at"] and k in listed and not p["left_at"]:
            events.append(_event(p, "joined", at))  # back again
        elif old["left_at"] and not p["left_at"]:
            p["left_at"] = old["left_at"]
        if p["left_at"] and not old["left_at"]:
            events.append(_event(p, "left", p["left_at"]))
        if not p["joined_at"]:
            p["joined_at"] = old["joined_at"]
    if update.datamode == "complete":
        for p in fresh:
            if key(p) not in listed and not p["left_at"]:
                p["left_at"] = at
                events.append(_event(p, "left", at))
    for k, old in old_by_key.items():
        if k not in seen:
            gone = Party(**old)
            if not gone["left_at"]:
                gone["left_at"] = at
                events.append(_event(gone, "left", at))
            fresh.append(gone)
    return fresh, events


def assign_senders(
    legs: Sequence[Leg], participants: Sequence[Party], md: RecordingMetadata | None
) -> None:
    """Which party sends on which leg: the metadata's stream labels, else the order of the
    legs (the From's on the first, the To's on the second)."""
    senders = md.label_senders() if md is not None else {}
    streams = {st.label: st for st in md.streams if st.label is not None} if md else {}
    for i, leg in enumerate(sorted(legs, key=lambda x: x.index)):
        p = senders.get(leg.label)
        st = streams.get(leg.label)
        if st is not None:
            leg.stream_id = st.stream_id
        if p is not None:
            leg.participant_id = p.participant_id
        elif md is None and i < len(participants):
            leg.participant_id = participants[i]["participant_id"]
    for part in participants:
        part["send"] = [leg.label for leg in legs if leg.participant_id == part["participant_id"]]
