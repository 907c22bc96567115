"""MIME multipart bodies (RFC 2046 section 5.1, RFC 5621) as SIPREC uses them.

Theory of operation: a SIPREC INVITE carries ``multipart/mixed`` with an SDP part and an
``application/rs-metadata+xml`` part (RFC 7866 section 9.1). :func:`split_body` returns the
parts in order; the caller picks them by content type. It is liberal, as real SRCs need:

* the boundary may be quoted or not, and other Content-Type parameters may come first;
* a delimiter is ``--boundary`` at the start of a line; the line break before it belongs to
  the delimiter (RFC 2046), so part bodies keep their exact octets, binary included;
* CRLF or bare LF line ends, a preamble before the first delimiter and an epilogue after the
  close delimiter are accepted and ignored; a missing close delimiter is tolerated (the last
  part runs to the end of the body, less one trailing line break);
* each part's headers (Content-Type, Content-Disposition, Content-ID...) are kept in a
  :class:`~siprec_recorder.sip.headers.Headers`; a part without Content-Type is
  ``text/plain`` (RFC 2046 section 5.1).

A body whose type is not ``multipart/*`` comes back as a single part. Bounded: at most
:data:`MAX_PARTS` parts (nested multiparts are not expanded -- call again on a part).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from siprec_recorder.sip.errors import MultipartError, SipParseError
from siprec_recorder.sip.headers import Headers
from siprec_recorder.sip.parser import unfold_header_lines

__all__ = ["MAX_PARTS", "BodyPart", "build_multipart", "content_type_params", "split_body"]

MAX_PARTS = 32
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One body part: its media type (with parameters), all its headers, its octets."""

    content_type: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def media_type(self) -> str:
        """``type/subtype`` in lower case, parameters removed."""
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def disposition(self) -> str | None:
        """The disposition type of Content-Disposition (``session``, ``recording-session``)."""
        value = self.headers.get("Content-Disposition")
        return None if value is None else value.split(";", 1)[0].strip().lower()


def content_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype;a=b;c="d"`` into the lower-cased media type and its parameters
    (names lower-cased, values unquoted)."""
    media, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for m in re.finditer(r';?\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', ";" + rest):
        value = m.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        params.setdefault(m.group(1).lower(), value)
    return media.strip().lower(), params


def _delimiter_positions(body: bytes, boundary: bytes) -> list[tuple[int, int]]:
    """``(start, end_of_delimiter_line)`` of each ``--boundary`` that begins a line.

    ``start`` includes the line break before the delimiter, which belongs to it.
    """
    dash = b"--" + boundary
    out: list[tuple[int, int]] = []
    pos = 0
    while True:
        i = body.find(dash, pos)
        if i < 0:
            return out
        at_line_start = i == 0 or body[i - 1 : i] == b"\n"
        after = body[i + len(dash) : i + len(dash) + 1]
        if at_line_start and after in (b"", b"-", b"\r", b"\n", b" ", b"\t"):
            start = i
            if i >= 1 and body[i - 1 : i] == b"\n":
                start = i - 2 if i >= 2 and body[i - 2 : i - 1] == b"\r" else i - 1
            eol = body.find(b"\n", i)
            out.append((start, len(body) if eol < 0 else eol + 1))
            if len(out) > MAX_PARTS + 1:
                raise MultipartError(f"more than {MAX_PARTS} body parts")
        pos = i + len(dash)


def _parse_part(raw: bytes) -> BodyPart:
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        head, body = b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    else:
        m = _HEAD_END_RE.search(raw)
        if m is None:
            # headers only, no empty line (truncated part): treat everything as headers
            head, body = raw, b""
        else:
            head, body = raw[: m.start()], raw[m.end() :]
    lines = [
        ln for ln in head.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n") if ln
    ]
    try:
        headers = Headers.of(unfold_header_lines(lines))
    except SipParseError as exc:
        raise MultipartError(f"malformed body part header: {exc.message}") from None
    return BodyPart(headers.get("Content-Type") or "text/plain", headers, body)


def split_body(content_type: str | None, body: bytes) -> list[BodyPart]:
    """Split a message body into its parts (one part when it is not multipart)."""
    media, params = content_type_params(content_type or "")
    if not media.startswith("multipart/"):
        headers = Headers.of([("Content-Type", content_type)]) if content_type else Headers()
        return [BodyPart(content_type or "", headers, body)]
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise MultipartError("multipart body without a valid boundary parameter")
    bnd = boundary.encode("utf-8", "surrogateescape")
    delims = _delimiter_positions(body, bnd)
    if not delims:
        raise MultipartError("multipart body has no delimiter line")
    parts: list[BodyPart] = []
    for index, (_, line_end) in enumerate(delims):
        delim_line = body[delims[index][0] : line_end].strip()
        if delim_line.startswith(b"--" + bnd + b"--"):
            break  # close delimiter: what follows is the epilogue
        if index + 1 < len(delims):
            raw = body[line_end : delims[index + 1][0]]
        else:
            raw = body[line_end:]  # no close delimiter: tolerated
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if not raw.strip() and index + 1 >= len(delims):
            break
        parts.append(_parse_part(raw))
    if not parts:
        raise MultipartError("multipart body has no parts")
    return parts


def build_multipart(parts: Iterable[BodyPart], subtype: str = "mixed") -> tuple[str, bytes]:
    """Serialise parts; return ``(Content-Type header value, body)``."""
    items = list(parts)
    boundary = "siprec-" + secrets.token_hex(12)
    while any(boundary.encode() in p.body for p in items):  # pragma: no cover - 96 random bits
        boundary = "siprec-" + secrets.token_hex(12)
    out = bytearray()
    for part in items:
        out += f"--{boundary}\r\n".encode()
        out += f"Content-Type: {part.content_type}\r\n".encode("utf-8", "surrogateescape")
        out += part.headers.without("Content-Type").without("Content-Length").serialize()
        out += b"\r\n" + part.body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/{subtype};boundary={boundary}", bytes(out)
