"""SDP session descriptions (RFC 8866, formerly RFC 4566) with the SIPREC bits (RFC 7866).

Theory of operation: :meth:`SessionDescription.parse` reads ``<type>=<value>`` lines into
frozen values; what a recorder needs is exposed as properties of :class:`MediaDescription`:
``label`` (RFC 4574, the key that ties an m-line to a metadata stream), ``direction``,
``rtpmaps`` (with the static payload types of RFC 3551 filled in when no ``a=rtpmap`` names
them), ``fmtp``, ``crypto`` (RFC 4568 SDES) and ``ptime``.

Inheritance: a session-level ``c=`` applies to every m-line without its own (RFC 8866
section 5.7), a session-level direction attribute to every m-line without one.
Serialisation writes a media ``c=`` only when it differs from the session one.

Tolerance: CRLF or bare LF, trailing whitespace, blank lines and lines of unknown type are
accepted; unknown lines are kept (``extra_lines``) and written back in RFC order. Structural
errors (no ``v=``/``m=`` at all, a non-numeric port, a line that is not ``x=...``) raise
:class:`SdpError` (``status_hint=488``). Bounded: at most :data:`MAX_MEDIA` m-lines and
:data:`MAX_LINES` lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from siprec_recorder.sip.errors import SdpError

__all__ = [
    "DIRECTIONS",
    "MAX_LINES",
    "MAX_MEDIA",
    "STATIC_PAYLOAD_TYPES",
    "Crypto",
    "MediaDescription",
    "RtpMap",
    "SessionDescription",
]

MAX_MEDIA = 64
MAX_LINES = 4096
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


#: RFC 3551 static audio payload types
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    13: RtpMap(13, "CN", 8000),
    18: RtpMap(18, "G729", 8000),
}


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <suite> <key-params> [<session-params>]`` (RFC 4568 section 9.1)."""

    tag: int
    suite: str
    key_params: str
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto:
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 9:
            raise SdpError("malformed a=crypto attribute")
        return cls(int(parts[0]), parts[1], parts[2], tuple(parts[3:]))

    def serialize(self) -> str:
        return " ".join([str(self.tag), self.suite, self.key_params, *self.session_params])


Attributes = tuple[tuple[str, str | None], ...]
Lines = tuple[tuple[str, str], ...]


def _attr(attributes: Attributes, name: str) -> str | None:
    for k, v in attributes:
        if k == name:
            return "" if v is None else v
    return None


def _direction_of(attributes: Attributes) -> str | None:
    for k, v in attributes:
        if v is None and k in DIRECTIONS:
            return k
    return None


def _payload_key(value: str) -> tuple[int, str] | None:
    pt, _, rest = value.partition(" ")
    if not pt.isdigit() or len(pt) > 3:
        return None
    return int(pt), rest.strip()


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section. ``connection`` is the ``c=`` value (inherited when absent)."""

    media: str
    port: int
    port_count: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    attributes: Attributes = ()
    extra_lines: Lines = ()
    inherited_direction: str | None = None

    @property
    def label(self) -> str | None:
        return _attr(self.attributes, "label")

    @property
    def direction(self) -> str:
        """``sendrecv`` / ``sendonly`` / ``recvonly`` / ``inactive`` (default ``sendrecv``)."""
        return _direction_of(self.attributes) or self.inherited_direction or "sendrecv"

    @property
    def connection_address(self) -> str | None:
        """The address part of ``c=IN IP4 <address>[/ttl]``."""
        if not self.connection:
            return None
        parts = self.connection.split()
        return parts[2].split("/")[0] if len(parts) >= 3 else None

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        out: dict[int, RtpMap] = {}
        for k, v in self.attributes:
            if k != "rtpmap" or v is None:
                continue
            key = _payload_key(v)
            if key is None:
                continue
            pt, desc = key
            pieces = desc.split("/")
            if len(pieces) < 2 or not pieces[1].strip().isdigit():
                continue
            channels = pieces[2].strip() if len(pieces) > 2 else "1"
            out.setdefault(
                pt,
                RtpMap(
                    pt,
                    pieces[0].strip(),
                    int(pieces[1].strip()),
                    int(channels) if channels.isdigit() else 1,
                ),
            )
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) in STATIC_PAYLOAD_TYPES and int(fmt) not in out:
                out[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for k, v in self.attributes:
            if k == "fmtp" and v is not None:
                key = _payload_key(v)
                if key is not None:
                    out.setdefault(key[0], key[1])
        return out

    @property
    def crypto(self) -> list[Crypto]:
        out: list[Crypto] = []
        for k, v in self.attributes:
            if k == "crypto" and v is not None:
                try:
                    out.append(Crypto.parse(v))
                except SdpError:
                    continue  # an unusable offer line is skipped, others may do
        return out

    @property
    def ptime(self) -> int | None:
        value = _attr(self.attributes, "ptime")
        try:
            return None if not value else int(float(value))
        except ValueError:
            return None

    def serialize_lines(self, session_connection: str | None) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count != 1 else str(self.port)
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        lines += _extra(self.extra_lines, "i")
        if self.connection and self.connection != session_connection:
            lines.append(f"c={self.connection}")
        lines += _extra(self.extra_lines, "bk")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines if t not in _MEDIA_ORDER]
        return lines


def _extra(lines: Lines, types: str) -> list[str]:
    return [f"{t}={v}" for t, v in lines if t in types]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP document."""

    version: int = 0
    origin: str = ""
    session_name: str = "-"
    connection: str | None = None
    times: tuple[str, ...] = ("0 0",)
    attributes: Attributes = ()
    media: tuple[MediaDescription, ...] = ()
    extra_lines: Lines = ()

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, if any."""
        return _direction_of(self.attributes)

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        raw_lines = text.split("\n")
        if len(raw_lines) > MAX_LINES:
            raise SdpError(f"SDP has more than {MAX_LINES} lines")
        version: int | None = None
        origin, name, connection = "", "-", None
        times: list[str] = []
        s_attrs: list[tuple[str, str | None]] = []
        s_extra: list[tuple[str, str]] = []
        media: list[_MediaLines] = []
        for raw in raw_lines:
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                if version is None and not media:
                    raise SdpError("malformed SDP line (expected <type>=<value>)")
                # Liberal: a document that started well keeps what it had; the rest is
                # trailing garbage (seen: an SRC's stray multipart fragment inside the SDP part).
                break
            kind, value = line[0], line[2:].strip()
            if kind == "m":
                if len(media) >= MAX_MEDIA:
                    raise SdpError(f"SDP has more than {MAX_MEDIA} media descriptions")
                media.append(_MediaLines(value))
                continue
            if media:
                current = media[-1]
                if kind == "c":
                    current.connection = value
                elif kind == "a":
                    current.attributes.append(_split_attr(value))
                else:
                    current.extra.append((kind, value))
                continue
            if kind == "v":
                if not value.isdigit():
                    raise SdpError("SDP version is not a number")
                version = int(value)
            elif kind == "o":
                origin = value
            elif kind == "s":
                name = value
            elif kind == "c":
                connection = value
            elif kind == "t":
                times.append(value)
            elif kind == "a":
                s_attrs.append(_split_attr(value))
            else:
                s_extra.append((kind, value))
        if version is None and not media:
            raise SdpError("not an SDP document (no v= and no m= line)")
        s_attributes = tuple(s_attrs)
        session_dir = _direction_of(s_attributes)
        return cls(
            version or 0,
            origin,
            name,
            connection,
            tuple(times),
            s_attributes,
            tuple(_media(m, connection, session_dir) for m in media),
            tuple(s_extra),
        )

    def serialize(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += _extra(self.extra_lines, "iuep")
        if self.connection:
            lines.append(f"c={self.connection}")
        lines += _extra(self.extra_lines, "b")
        lines += [f"t={t}" for t in self.times]
        lines += _extra(self.extra_lines, "rzk")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines if t not in _SESSION_ORDER]
        for m in self.media:
            lines += m.serialize_lines(self.connection)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _split_attr(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    return (name.strip(), rest.strip() if colon else None)


class _MediaLines:
    """The lines of one m= section while parsing."""

    __slots__ = ("attributes", "connection", "extra", "m_line")

    def __init__(self, m_line: str) -> None:
        self.m_line = m_line
        self.connection: str | None = None
        self.attributes: list[tuple[str, str | None]] = []
        self.extra: list[tuple[str, str]] = []


def _media(m: _MediaLines, session_c: str | None, session_dir: str | None) -> MediaDescription:
    fields = m.m_line.split()
    if len(fields) < 3:
        raise SdpError("malformed m= line")
    port_text, _, count_text = fields[1].partition("/")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError("invalid port in m= line")
    if count_text and (not count_text.isdigit() or not 0 < int(count_text) <= 65535):
        raise SdpError("invalid port count in m= line")
    return MediaDescription(
        media=fields[0],
        port=int(port_text),
        port_count=int(count_text) if count_text else 1,
        proto=fields[2],
        formats=tuple(fields[3:]),
        connection=m.connection if m.connection is not None else session_c,
        attributes=tuple(m.attributes),
        extra_lines=tuple(m.extra),
        inherited_direction=session_dir,
    )
