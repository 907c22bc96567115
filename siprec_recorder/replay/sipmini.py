"""Just enough SIP and SDP for a replay client (not the server-side parser).

Theory of operation
-------------------
The replay tool reads SIP from captures and talks to one recorder, so it needs to split a
message into start line, headers and body (RFC 3261 section 7, compact header names of
section 7.3.3 expanded), frame messages on a TCP stream by Content-Length (section 18.3),
and read the few SDP lines (RFC 8866) that locate media: ``c=``, ``m=``, ``a=rtpmap``,
``a=fmtp``, ``a=label``, ``a=crypto`` and the direction attributes.  Anything it cannot
read is skipped: captures hold all kinds of traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "MiniMedia",
    "MiniMessage",
    "MiniSdp",
    "StreamFramer",
    "parse_message",
    "parse_sdp",
    "sdp_of",
    "uri_of",
]

_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "c": "content-type",
    "l": "content-length",
    "m": "contact",
    "v": "via",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
_REQUEST_RE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_RE = re.compile(r"^SIP/2\.0 (\d{3})(?: (.*))?$")
_BOUNDARY_RE = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def _is_int(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts e.g. superscripts)."""
    return text.isascii() and text.isdigit() and len(text) < 10


@dataclass(frozen=True, slots=True)
class MiniMessage:
    """A SIP request (``method`` set) or response (``status`` set)."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""

    def header(self, name: str) -> str | None:
        name = _COMPACT.get(name.lower(), name.lower())
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        name = _COMPACT.get(name.lower(), name.lower())
        return [value for key, value in self.headers if key == name]

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def cseq(self) -> tuple[int, str] | None:
        value = self.header("cseq")
        if not value:
            return None
        parts = value.split()
        if len(parts) != 2 or not _is_int(parts[0]):
            return None
        return int(parts[0]), parts[1].upper()


def parse_message(data: bytes) -> MiniMessage | None:
    """Parse one SIP message; ``None`` when ``data`` is not one."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        head, body = data, b""
    else:
        head, body = data[: match.start()], data[match.end() :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines:
        return None
    start = lines[0].strip()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    length = next((v for k, v in headers if k == "content-length"), None)
    if length is not None and _is_int(length.strip()):
        body = body[: int(length)]
    request = _REQUEST_RE.match(start)
    if request:
        return MiniMessage(
            start, tuple(headers), body, method=request.group(1).upper(), uri=request.group(2)
        )
    status = _STATUS_RE.match(start)
    if status:
        return MiniMessage(
            start, tuple(headers), body, status=int(status.group(1)), reason=status.group(2) or ""
        )
    return None


class StreamFramer:
    """Split a SIP byte stream into messages by Content-Length (RFC 3261 section 18.3)."""

    def __init__(self, max_message_size: int = 65535) -> None:
        self._buffer = bytearray()
        self._max = max_message_size

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":  # keep-alive CRLFs
                del self._buffer[:2]
            match = re.search(rb"\r?\n\r?\n", self._buffer)
            if match is None:
                if len(self._buffer) > self._max:
                    raise ValueError("SIP header block too large")
                return out
            head = bytes(self._buffer[: match.start()])
            length_match = re.search(
                rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head, re.IGNORECASE | re.MULTILINE
            )
            length = int(length_match.group(1)) if length_match else 0
            end = match.end() + length
            if end > self._max:
                raise ValueError("SIP message too large")
            if len(self._buffer) < end:
                return out
            out.append(bytes(self._buffer[:end]))
            del self._buffer[:end]


@dataclass(frozen=True, slots=True)
class MiniMedia:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    label: str | None = None
    direction: str = "sendrecv"
    crypto: tuple[str, ...] = ()
    ptime: int | None = None


@dataclass(frozen=True, slots=True)
class MiniSdp:
    connection: str | None
    media: tuple[MiniMedia, ...]

    def audio(self) -> list[MiniMedia]:
        return [m for m in self.media if m.media == "audio"]


def _connection_address(value: str) -> str | None:
    parts = value.split()
    if len(parts) >= 3:
        return parts[2].split("/")[0]
    return None


@dataclass(slots=True)
class _MediaBuilder:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    label: str | None = None
    direction: str = "sendrecv"
    crypto: list[str] = field(default_factory=list)
    ptime: int | None = None


def parse_sdp(body: bytes | str) -> MiniSdp | None:
    """Read the media lines of an SDP body; ``None`` when there is no ``m=`` line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    session_c: str | None = None
    media: list[_MediaBuilder] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        current = media[-1] if media else None
        if kind == "c":
            if current is None:
                session_c = _connection_address(value)
            else:
                current.connection = _connection_address(value)
        elif kind == "m":
            parts = value.split()
            if len(parts) < 3:
                continue
            port = parts[1].split("/")[0]
            media.append(
                _MediaBuilder(
                    parts[0].lower(), int(port) if _is_int(port) else 0, parts[2], tuple(parts[3:])
                )
            )
        elif kind == "a" and current is not None:
            name, _, attr = value.partition(":")
            name = name.strip().lower()
            attr = attr.strip()
            if name in ("rtpmap", "fmtp"):
                pt, _, rest = attr.partition(" ")
                if _is_int(pt):
                    table = current.rtpmap if name == "rtpmap" else current.fmtp
                    table[int(pt)] = rest.strip()
            elif name == "label":
                current.label = attr
            elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                current.direction = name
            elif name == "crypto":
                current.crypto.append(attr)
            elif name == "ptime" and _is_int(attr):
                current.ptime = int(attr)
    if not media:
        return None
    return MiniSdp(
        connection=session_c,
        media=tuple(
            MiniMedia(
                media=m.media,
                port=m.port,
                proto=m.proto,
                formats=m.formats,
                connection=m.connection or session_c,
                rtpmap=m.rtpmap,
                fmtp=m.fmtp,
                label=m.label,
                direction=m.direction,
                crypto=tuple(m.crypto),
                ptime=m.ptime,
            )
            for m in media
        ),
    )


def sdp_of(message: MiniMessage) -> MiniSdp | None:
    """The SDP of a message: its body, or the ``application/sdp`` part of a multipart one."""
    ctype = (message.header("content-type") or "").lower()
    if not message.body:
        return None
    if "multipart" in ctype:
        match = _BOUNDARY_RE.search(message.header("content-type") or "")
        if match is None:
            return None
        delimiter = b"--" + match.group(1).strip().encode()
        for part in message.body.split(delimiter)[1:]:
            head, _, body = (
                part.partition(b"\r\n\r\n") if b"\r\n\r\n" in part else part.partition(b"\n\n")
            )
            if b"application/sdp" in head.lower():
                return parse_sdp(body)
        return None
    if ctype and "sdp" not in ctype:
        return None
    return parse_sdp(message.body)


def uri_of(value: str | None) -> str | None:
    """The URI of a From/To/Contact value: ``'"A" <sip:a@h>;tag=1'`` -> ``'sip:a@h'``."""
    if not value:
        return None
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()
