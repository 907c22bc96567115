"""RFC 7865 recording metadata, parsed liberally into frozen dataclasses.

Theory of operation
-------------------
An SRC sends an ``application/rs-metadata+xml`` body (RFC 7866 section 6.1) that says who
takes part in the communication session and which media stream (SDP ``a=label``) carries
whose voice.  Real SRCs differ a lot (see ``tests/vectors/metadata/``), so the parser keys
on *local* element names, case-insensitively, and accepts:

* the RFC namespace ``urn:ietf:params:xml:ns:recording:1``, the pre-RFC
  ``urn:ietf:params:xml:ns:recording``, the draft ``urn:ietf:params:xml:ns:siprec``
  (BroadWorks ``<recording_metadata>``), no namespace, any prefix (``tns:``);
* identifiers as ``participant_id``/``id``, ``session_id``/``session``,
  ``stream_id``/``id``, ``group_id``/``id``;
* stream associations as ``<participantstreamassoc>`` (RFC 7865 section 6.6) or as
  ``<send>``/``<recv>`` directly inside ``<participant>`` (draft schema); a ``<send>`` may
  hold the stream id as text or in ``<id>`` children;
* participant names as ``<nameID aor=".."><name>..</name></nameID>`` or the older
  ``<aor>``/``<name>`` children;
* association times on ``<participantsessionassoc>`` (RFC 7865 section 6.5) or inside
  ``<participant>``; ``<sessionrecordingassoc>`` (section 6.4).

Everything not understood (``<extensiondata>``, vendor elements in other namespaces) is
kept as a raw XML string in ``extensions`` of the document or of the participant.

The XML is untrusted: it goes through :mod:`defusedxml` with DTDs, entity declarations
and external references refused, and size, element count and nesting depth are capped
*while* parsing.  Any problem raises :class:`MetadataError` (``status_hint=400``).

A document is either a complete snapshot or a partial update (``datamode``, RFC 7865
section 6.1); :meth:`RecordingMetadata.merge` folds an update received in a re-INVITE or
UPDATE into what is known (section 6.2 of RFC 7866: participants joining, leaving with a
disassociate-time, and SRC placeholders replaced by the real parties).
"""

from __future__ import annotations

import copy
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from siprec_recorder.errors import RemoteProtocolError
from siprec_recorder.phone import normalize_number

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_ELEMENTS",
    "RECORDING_NAMESPACES",
    "Group",
    "MediaStream",
    "MetadataError",
    "Participant",
    "RecordingMetadata",
    "Session",
    "parse_metadata",
]

MAX_METADATA_BYTES = 256 * 1024
MAX_METADATA_ELEMENTS = 10_000
MAX_METADATA_DEPTH = 32

#: Namespaces whose elements we interpret ("" is no namespace).
RECORDING_NAMESPACES = frozenset(
    {
        "urn:ietf:params:xml:ns:recording:1",
        "urn:ietf:params:xml:ns:recording",
        "urn:ietf:params:xml:ns:siprec",
        "",
    }
)

Normalizer = Callable[[str], "str | None"]


class MetadataError(RemoteProtocolError):
    """The recording metadata cannot be accepted (answer 400 by default)."""

    def __init__(self, message: str, status_hint: int | None = 400) -> None:
        super().__init__(message, status_hint)


@dataclass(frozen=True, slots=True)
class Participant:
    """One participant (RFC 7865 section 6.6) with the streams it sends and receives.

    ``send``/``recv`` hold stream ids; ``number`` is ``normalize_number(aor)``;
    ``extensions`` are raw XML strings of the vendor elements found inside it.
    """

    participant_id: str
    aor: str | None = None
    name: str | None = None
    number: str | None = None
    send: tuple[str, ...] = ()
    recv: tuple[str, ...] = ()
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None
    extensions: tuple[str, ...] = ()

    @property
    def is_placeholder(self) -> bool:
        """True for a participant without a usable number (e.g. ``sip:ASBCE@asbce.com``)."""
        return self.number is None

    def merged_with(self, newer: Participant) -> Participant:
        """Return this participant updated by ``newer`` (same id): newer values win."""
        return Participant(
            participant_id=self.participant_id,
            aor=newer.aor if newer.aor is not None else self.aor,
            name=newer.name if newer.name is not None else self.name,
            number=newer.number if newer.aor is not None else self.number,
            send=_union(self.send, newer.send),
            recv=_union(self.recv, newer.recv),
            associate_time=newer.associate_time or self.associate_time,
            disassociate_time=newer.disassociate_time or self.disassociate_time,
            extensions=_union(self.extensions, newer.extensions),
        )


@dataclass(frozen=True, slots=True)
class MediaStream:
    """One media stream (RFC 7865 section 6.5): its ``label`` is the SDP ``a=label``."""

    stream_id: str
    label: str | None = None
    session_id: str | None = None
    mode: str | None = None

    def merged_with(self, newer: MediaStream) -> MediaStream:
        return MediaStream(
            stream_id=self.stream_id,
            label=newer.label if newer.label is not None else self.label,
            session_id=newer.session_id if newer.session_id is not None else self.session_id,
            mode=newer.mode if newer.mode is not None else self.mode,
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A communication session (RFC 7865 section 6.3) and its recording association."""

    session_id: str
    sip_session_ids: tuple[str, ...] = ()
    group_ref: str | None = None
    start_time: datetime | None = None
    stop_time: datetime | None = None
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None

    def merged_with(self, newer: Session) -> Session:
        return Session(
            session_id=self.session_id,
            sip_session_ids=_union(self.sip_session_ids, newer.sip_session_ids),
            group_ref=newer.group_ref or self.group_ref,
            start_time=newer.start_time or self.start_time,
            stop_time=newer.stop_time or self.stop_time,
            associate_time=newer.associate_time or self.associate_time,
            disassociate_time=newer.disassociate_time or self.disassociate_time,
        )


@dataclass(frozen=True, slots=True)
class Group:
    """A communication session group (RFC 7865 section 6.2)."""

    group_id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None
    extensions: tuple[str, ...] = ()

    def merged_with(self, newer: Group) -> Group:
        return Group(
            group_id=self.group_id,
            associate_time=newer.associate_time or self.associate_time,
            disassociate_time=newer.disassociate_time or self.disassociate_time,
            extensions=_union(self.extensions, newer.extensions),
        )


@dataclass(frozen=True, slots=True)
class RecordingMetadata:
    """A parsed metadata document (or the merge of several): see the module docstring."""

    datamode: str = "complete"
    sessions: tuple[Session, ...] = ()
    groups: tuple[Group, ...] = ()
    participants: tuple[Participant, ...] = ()
    streams: tuple[MediaStream, ...] = ()
    extensions: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, xml: bytes | str, *, normalize: Normalizer = normalize_number
    ) -> RecordingMetadata:
        """Parse an rs-metadata body; raise :class:`MetadataError` on anything unsafe.

        ``normalize`` turns an aor into ``Participant.number`` (pass a
        :func:`functools.partial` of :func:`normalize_number` with the configured prefixes).
        """
        return parse_metadata(xml, normalize=normalize)

    # -- queries ---------------------------------------------------------------------

    def participant(self, participant_id: str) -> Participant | None:
        for p in self.participants:
            if p.participant_id == participant_id:
                return p
        return None

    def stream_labels(self) -> dict[str, str]:
        """Map stream id -> label for the streams that have a label."""
        return {s.stream_id: s.label for s in self.streams if s.label is not None}

    def senders_by_label(self) -> dict[str, tuple[Participant, ...]]:
        """Map each stream label to every participant that sends on it (in order)."""
        labels = self.stream_labels()
        result: dict[str, list[Participant]] = {}
        for p in self.participants:
            for stream_id in p.send:
                label = labels.get(stream_id)
                if label is None:
                    continue
                bucket = result.setdefault(label, [])
                if p not in bucket:
                    bucket.append(p)
        return {label: tuple(ps) for label, ps in result.items()}

    def label_senders(self) -> dict[str, Participant]:
        """Map each stream label to *the* participant who sends on it.

        When several participants send on one label, those that have left
        (``disassociate_time`` set) are ignored; a label that still has more than one
        sender (a mixed stream, e.g. Metaswitch) is left out -- see
        :meth:`senders_by_label` for those.
        """
        result: dict[str, Participant] = {}
        for label, senders in self.senders_by_label().items():
            if len(senders) > 1:
                present = tuple(p for p in senders if p.disassociate_time is None)
                senders = present if present else senders
            if len(senders) == 1:
                result[label] = senders[0]
        return result

    # -- updates ---------------------------------------------------------------------

    def merge(self, update: RecordingMetadata) -> RecordingMetadata:
        """Fold a later document (re-INVITE / UPDATE) into this one.

        A ``partial`` update adds and updates elements by id, keeping the rest. A
        ``complete`` update is the new truth, except that earlier participants with a
        number that it no longer lists are kept (a recording names everyone heard in it).
        In both cases an earlier placeholder participant without a number that the
        update does not mention is dropped once the update brings a new participant
        with a number that sends on the same label, or when the placeholder sends on
        no labelled stream at all (Avaya SBCE's ``sip:ASBCE@asbce.com``).
        """
        if update.datamode == "complete":
            merged = _replace_with(self, update)
        else:
            merged = _merge_into(self, update)
        return _drop_replaced_placeholders(self, update, merged)

    # -- output ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the recording's sidecar file."""
        labels = self.stream_labels()
        return {
            "datamode": self.datamode,
            "groups": [
                {
                    "group_id": g.group_id,
                    "associate_time": _iso(g.associate_time),
                    "disassociate_time": _iso(g.disassociate_time),
                    "extensions": list(g.extensions),
                }
                for g in self.groups
            ],
            "sessions": [
                {
                    "session_id": s.session_id,
                    "sip_session_ids": list(s.sip_session_ids),
                    "group_ref": s.group_ref,
                    "start_time": _iso(s.start_time),
                    "stop_time": _iso(s.stop_time),
                    "associate_time": _iso(s.associate_time),
                    "disassociate_time": _iso(s.disassociate_time),
                }
                for s in self.sessions
            ],
            "participants": [
                {
                    "participant_id": p.participant_id,
                    "aor": p.aor,
                    "name": p.name,
                    "number": p.number,
                    "send": list(p.send),
                    "recv": list(p.recv),
                    "send_labels": [labels[s] for s in p.send if s in labels],
                    "recv_labels": [labels[s] for s in p.recv if s in labels],
                    "associate_time": _iso(p.associate_time),
                    "disassociate_time": _iso(p.disassociate_time),
                    "extensions": list(p.extensions),
                }
                for p in self.participants
            ],
            "streams": [
                {
                    "stream_id": s.stream_id,
                    "label": s.label,
                    "session_id": s.session_id,
                    "mode": s.mode,
                }
                for s in self.streams
            ],
            "label_senders": {label: p.participant_id for label, p in self.label_senders().items()},
            "extensions": list(self.extensions),
        }


# ---------------------------------------------------------------------------------------
# parsing


class _BoundedTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder that refuses too many or too deeply nested elements while parsing."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._count = 0

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        self._depth += 1
        self._count += 1
        if self._depth > MAX_METADATA_DEPTH:
            raise MetadataError(f"metadata nested deeper than {MAX_METADATA_DEPTH} elements")
        if self._count > MAX_METADATA_ELEMENTS:
            raise MetadataError(f"metadata has more than {MAX_METADATA_ELEMENTS} elements")
        return super().start(tag, attrs)

    def end(self, tag: Any) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def _parse_xml(data: bytes) -> ET.Element:
    builder = _BoundedTreeBuilder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        root = parser.close()
    except MetadataError:
        raise
    except DefusedXmlException as exc:
        raise MetadataError(f"metadata XML refused: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {exc}") from None
    except (ValueError, LookupError, RecursionError, UnicodeError) as exc:
        raise MetadataError(f"metadata XML cannot be read: {type(exc).__name__}") from None
    if not isinstance(root, ET.Element):
        raise MetadataError("metadata XML has no root element")
    return root


def _split_tag(tag: object) -> tuple[str, str]:
    """Return (namespace, lower-cased local name) of an element tag."""
    if not isinstance(tag, str):
        return "\x00", ""  # comments / processing instructions
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local.lower()
    return "", tag.lower()


def _local(elem: ET.Element, core_ns: frozenset[str]) -> str | None:
    """Local name of an element we interpret, or None for an extension element."""
    ns, local = _split_tag(elem.tag)
    return local if ns in core_ns else None


def _attr(elem: ET.Element, *names: str) -> str | None:
    """First present attribute among ``names`` (namespace-less, case-insensitive)."""
    lowered: dict[str, str] = {}
    for key, value in elem.attrib.items():
        local = key.rsplit("}", 1)[-1].lower()
        lowered.setdefault(local, value)
    for name in names:
        if name in lowered:
            return lowered[name].strip()
    return None


def _text(elem: ET.Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    value = elem.text.strip()
    return value or None


def _child(elem: ET.Element, name: str, core_ns: frozenset[str]) -> ET.Element | None:
    for child in elem:
        if _local(child, core_ns) == name:
            return child
    return None


def _children(elem: ET.Element, name: str, core_ns: frozenset[str]) -> list[ET.Element]:
    return [child for child in elem if _local(child, core_ns) == name]


def _raw(elem: ET.Element) -> str:
    clone = copy.copy(elem)
    clone.tail = None
    return ET.tostring(clone, encoding="unicode")


def _time(text: str | None) -> datetime | None:
    """Parse an xs:dateTime liberally; naive times are taken as UTC; junk gives None."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _iso(value: datetime | None) -> str | None:
    """The instant with the offset the SRC gave it, not in UTC (the sidecar keeps the
    metadata as sent)."""
    return value.isoformat() if value is not None else None


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _association_times(
    elem: ET.Element, core_ns: frozenset[str]
) -> tuple[datetime | None, datetime | None]:
    """An element's ``associate-time`` and ``disassociate-time`` (RFC 7865 section 6)."""
    return (
        _time(_text(_child(elem, "associate-time", core_ns))),
        _time(_text(_child(elem, "disassociate-time", core_ns))),
    )


def _stream_refs(elem: ET.Element, core_ns: frozenset[str]) -> list[str]:
    """Stream ids of a ``<send>``/``<recv>``: its text, or its ``<id>`` children."""
    ids = [t for t in (_text(c) for c in _children(elem, "id", core_ns)) if t]
    if ids:
        return ids
    text = _text(elem)
    return [text] if text else []


class _Collector:
    """Accumulates elements by id while walking one document."""

    def __init__(self, normalize: Normalizer, core_ns: frozenset[str]) -> None:
        self.normalize = normalize
        self.core_ns = core_ns
        self.participants: dict[str, Participant] = {}
        self.streams: dict[str, MediaStream] = {}
        self.sessions: dict[str, Session] = {}
        self.groups: dict[str, Group] = {}
        self.extensions: list[str] = []
        self.datamode = "complete"

    def add_participant(self, p: Participant) -> None:
        old = self.participants.get(p.participant_id)
        self.participants[p.participant_id] = old.merged_with(p) if old else p

    def add_session(self, s: Session) -> None:
        old = self.sessions.get(s.session_id)
        self.sessions[s.session_id] = old.merged_with(s) if old else s

    def add_stream(self, s: MediaStream) -> None:
        old = self.streams.get(s.stream_id)
        self.streams[s.stream_id] = old.merged_with(s) if old else s

    def add_group(self, g: Group) -> None:
        old = self.groups.get(g.group_id)
        self.groups[g.group_id] = old.merged_with(g) if old else g

    # element handlers --------------------------------------------------------------

    def datamode_(self, elem: ET.Element) -> None:
        value = (_text(elem) or "").lower()
        if value in ("complete", "partial"):
            self.datamode = value

    def group(self, elem: ET.Element) -> None:
        group_id = _attr(elem, "group_id", "id")
        if group_id is None:
            self.extensions.append(_raw(elem))
            return
        ns = self.core_ns
        extensions = [_raw(c) for c in elem if _local(c, ns) is None]
        extensions += [_raw(c) for c in _children(elem, "extensiondata", ns)]
        associate, disassociate = _association_times(elem, ns)
        self.add_group(
            Group(
                group_id=group_id,
                associate_time=associate,
                disassociate_time=disassociate,
                extensions=tuple(extensions),
            )
        )

    def session(self, elem: ET.Element) -> None:
        session_id = _attr(elem, "session_id", "id")
        if session_id is None:
            self.extensions.append(_raw(elem))
            return
        ns = self.core_ns
        sip_ids = [t for t in (_text(c) for c in _children(elem, "sipsessionid", ns)) if t]
        associate, disassociate = _association_times(elem, ns)
        self.add_session(
            Session(
                session_id=session_id,
                sip_session_ids=tuple(sip_ids),
                group_ref=_text(_child(elem, "group-ref", ns)) or _attr(elem, "group"),
                start_time=_time(_text(_child(elem, "start-time", ns))),
                stop_time=_time(_text(_child(elem, "stop-time", ns))),
                associate_time=associate,
                disassociate_time=disassociate,
            )
        )

    def sessionrecordingassoc(self, elem: ET.Element) -> None:
        session_id = _attr(elem, "session_id", "session", "id")
        if session_id is not None:
            associate, disassociate = _association_times(elem, self.core_ns)
            self.add_session(
                Session(session_id, associate_time=associate, disassociate_time=disassociate)
            )

    def participant(self, elem: ET.Element) -> None:
        participant_id = _attr(elem, "participant_id", "id")
        if participant_id is None:
            self.extensions.append(_raw(elem))
            return
        ns = self.core_ns
        aor: str | None = None
        name: str | None = None
        for name_id in _children(elem, "nameid", ns):
            candidate = _attr(name_id, "aor") or _text(_child(name_id, "aor", ns))
            if aor is None and candidate:
                aor = candidate
            if name is None:
                name = _text(_child(name_id, "name", ns))
        aor = aor or _text(_child(elem, "aor", ns))
        name = name or _text(_child(elem, "name", ns))
        send: list[str] = []
        recv: list[str] = []
        for child in _children(elem, "send", ns):
            send += _stream_refs(child, ns)
        for child in _children(elem, "recv", ns):
            recv += _stream_refs(child, ns)
        understood = {"nameid", "aor", "name", "send", "recv", "associate-time"}
        understood.add("disassociate-time")
        extensions = [_raw(c) for c in elem if _local(c, ns) not in understood]
        associate, disassociate = _association_times(elem, ns)
        self.add_participant(
            Participant(
                participant_id=participant_id,
                aor=aor,
                name=name,
                number=self.normalize(aor) if aor else None,
                send=_union(send, ()),
                recv=_union(recv, ()),
                associate_time=associate,
                disassociate_time=disassociate,
                extensions=tuple(e for e in extensions if e),
            )
        )

    def participantsessionassoc(self, elem: ET.Element) -> None:
        participant_id = _attr(elem, "participant_id", "participant")
        if participant_id is not None:
            associate, disassociate = _association_times(elem, self.core_ns)
            self.add_participant(
                Participant(
                    participant_id, associate_time=associate, disassociate_time=disassociate
                )
            )

    def participantstreamassoc(self, elem: ET.Element) -> None:
        participant_id = _attr(elem, "participant_id", "participant")
        if participant_id is None:
            return
        ns = self.core_ns
        send: list[str] = []
        recv: list[str] = []
        for child in _children(elem, "send", ns):
            send += _stream_refs(child, ns)
        for child in _children(elem, "recv", ns):
            recv += _stream_refs(child, ns)
        self.add_participant(
            Participant(participant_id=participant_id, send=_union(send, ()), recv=_union(recv, ()))
        )

    def stream(self, elem: ET.Element) -> None:
        stream_id = _attr(elem, "stream_id", "id")
        if stream_id is None:
            self.extensions.append(_raw(elem))
            return
        ns = self.core_ns
        self.add_stream(
            MediaStream(
                stream_id=stream_id,
                label=_text(_child(elem, "label", ns)),
                session_id=_attr(elem, "session_id", "session"),
                mode=(_text(_child(elem, "mode", ns)) or "").lower() or None,
            )
        )

    def result(self) -> RecordingMetadata:
        return RecordingMetadata(
            datamode=self.datamode,
            sessions=tuple(self.sessions.values()),
            groups=tuple(self.groups.values()),
            participants=tuple(self.participants.values()),
            streams=tuple(self.streams.values()),
            extensions=tuple(self.extensions),
        )


def parse_metadata(
    xml: bytes | str, *, normalize: Normalizer = normalize_number
) -> RecordingMetadata:
    """Parse an rs-metadata body (see :meth:`RecordingMetadata.parse`)."""
    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
    data = data.lstrip(b" \t\r\n")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:].lstrip(b" \t\r\n")
    if not data:
        raise MetadataError("metadata body is empty")
    root = _parse_xml(data)
    root_ns, root_local = _split_tag(root.tag)
    if not root_local.startswith("recording"):
        raise MetadataError(f"metadata root element is <{root_local}>, not <recording>")
    core_ns = RECORDING_NAMESPACES | {root_ns}
    collector = _Collector(normalize, core_ns)
    handlers: dict[str, Callable[[ET.Element], None]] = {
        "datamode": collector.datamode_,
        "group": collector.group,
        "session": collector.session,
        "sessionrecordingassoc": collector.sessionrecordingassoc,
        "participant": collector.participant,
        "participantsessionassoc": collector.participantsessionassoc,
        "participantstreamassoc": collector.participantstreamassoc,
        "stream": collector.stream,
    }
    for child in root:
        local = _local(child, core_ns)
        handler = handlers.get(local) if local is not None else None
        if handler is not None:
            handler(child)
        elif isinstance(child.tag, str):
            collector.extensions.append(_raw(child))
    return collector.result()


# ---------------------------------------------------------------------------------------
# merging


def _replace_with(base: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """A complete update: its elements win; earlier numbered participants are kept."""
    newer = {p.participant_id: p for p in update.participants}
    participants: list[Participant] = []
    for old in base.participants:
        new = newer.pop(old.participant_id, None)
        if new is not None:
            participants.append(
                dataclasses.replace(new, associate_time=new.associate_time or old.associate_time)
            )
        elif not old.is_placeholder:
            participants.append(old)
    participants.extend(newer.values())
    old_sessions = {s.session_id: s for s in base.sessions}
    old_groups = {g.group_id: g for g in base.groups}
    return RecordingMetadata(
        datamode=update.datamode,
        sessions=tuple(
            old_sessions[s.session_id].merged_with(s) if s.session_id in old_sessions else s
            for s in update.sessions
        ),
        groups=tuple(
            old_groups[g.group_id].merged_with(g) if g.group_id in old_groups else g
            for g in update.groups
        ),
        participants=tuple(participants),
        streams=update.streams,
        extensions=update.extensions,
    )


def _merge_into(base: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """A partial update: elements are added or updated by id, the rest is kept."""
    participants: dict[str, Participant] = {p.participant_id: p for p in base.participants}
    for p in update.participants:
        old = participants.get(p.participant_id)
        participants[p.participant_id] = old.merged_with(p) if old else p

    streams: dict[str, MediaStream] = {s.stream_id: s for s in base.streams}
    for s in update.streams:
        old_stream = streams.get(s.stream_id)
        if old_stream is None and s.label is not None:
            # the same label under a new id (e.g. Avaya's empty stream_id) replaces it
            for key, existing in list(streams.items()):
                if existing.label == s.label:
                    del streams[key]
        streams[s.stream_id] = old_stream.merged_with(s) if old_stream else s

    sessions: dict[str, Session] = {s.session_id: s for s in base.sessions}
    for sess in update.sessions:
        old_session = sessions.get(sess.session_id)
        sessions[sess.session_id] = old_session.merged_with(sess) if old_session else sess

    groups: dict[str, Group] = {g.group_id: g for g in base.groups}
    for g in update.groups:
        old_group = groups.get(g.group_id)
        groups[g.group_id] = old_group.merged_with(g) if old_group else g

    return RecordingMetadata(
        datamode=base.datamode,
        sessions=tuple(sessions.values()),
        groups=tuple(groups.values()),
        participants=tuple(participants.values()),
        streams=tuple(streams.values()),
        extensions=_union(base.extensions, update.extensions),
    )


def _labels_sent(meta: RecordingMetadata, p: Participant) -> set[str]:
    labels = meta.stream_labels()
    return {labels[s] for s in p.send if s in labels}


def _drop_replaced_placeholders(
    before: RecordingMetadata, update: RecordingMetadata, merged: RecordingMetadata
) -> RecordingMetadata:
    new_ids = {p.participant_id for p in update.participants} - {
        p.participant_id for p in before.participants
    }
    newcomers = [
        p for p in merged.participants if p.participant_id in new_ids and not p.is_placeholder
    ]
    if not newcomers:
        return merged
    newcomer_labels: set[str] = set()
    for p in newcomers:
        newcomer_labels |= _labels_sent(merged, p)
    mentioned = {p.participant_id for p in update.participants}
    kept: list[Participant] = []
    for p in merged.participants:
        if p.is_placeholder and p.participant_id not in mentioned:
            sent = _labels_sent(before, p)
            if not sent or sent & newcomer_labels:
                continue
        kept.append(p)
    return dataclasses.replace(merged, participants=tuple(kept))
