"""Wire-level framing of SIP messages (RFC 3261 section 7, 7.5, 18.3).

Theory of operation: a SIP message is a start line, header lines, an empty line and a
body. This module finds those pieces in bytes and nothing more; turning them into
:class:`~siprec_recorder.sip.message.SipRequest` objects is ``message.py``'s job.

* :func:`split_head` finds the end of the header section (CRLF CRLF, or bare LF LF from
  sloppy peers), skips CRLF keep-alives before the start line (section 7.5), and unfolds
  continuation lines (section 7.3.1) into ``(name, value)`` pairs.
* :class:`StreamFramer` cuts a TCP/TLS byte stream into messages using Content-Length, which
  is mandatory on streams (section 18.3). It buffers at most ``max_message_size`` bytes; any
  framing error is fatal for the connection (the caller closes it), because the position of
  the next message is unknowable. When the header section was complete, the error's
  ``partial`` holds it (bytes) and its ``status_hint`` says what to answer (400, 513)
  before closing -- see ``SipCore.reject_stream_head``.
"""

from __future__ import annotations

import re

from siprec_recorder.sip.errors import MessageTooLarge, SipParseError

__all__ = ["MAX_HEADERS", "StreamFramer", "split_head", "unfold_header_lines"]

#: upper bound on header lines per message
MAX_HEADERS = 256
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)\r?$", re.I | re.M)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def skip_keepalives(data: bytes | bytearray) -> int:
    """Index of the first byte that is not CR or LF."""
    i = 0
    n = len(data)
    while i < n and data[i] in (13, 10):
        i += 1
    return i


def find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """``(end_of_headers, start_of_body)`` or ``None`` when the empty line is not there yet."""
    m = _HEAD_END_RE.search(data, start)
    if m is None:
        return None
    return m.start(), m.end()


def unfold_header_lines(lines: list[str]) -> list[tuple[str, str]]:
    """Turn header lines (continuations included) into ``(name, value)`` pairs."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise SipParseError("continuation line before the first header")
            name, value = out[-1]
            piece = line.strip(" \t")
            out[-1] = (name, f"{value} {piece}" if value and piece else value + piece)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise SipParseError("malformed header line")
        out.append((name, value.strip(" \t")))
        if len(out) > MAX_HEADERS:
            raise SipParseError("too many header fields")
    return out


def split_head(data: bytes) -> tuple[str, list[tuple[str, str]], int]:
    """Split ``data`` into ``(start_line, header pairs, body_offset)``.

    Raises :class:`SipParseError` (hint ``None``: there is nothing to answer) when the
    header section is not terminated.
    """
    start = skip_keepalives(data)
    found = find_head_end(data, start)
    if found is None:
        # A datagram without body whose last header line lacks the empty line after it is
        # still readable (RFC 5118 archive copies look like that); anything else is cut off.
        if not data.endswith(b"\n") or start >= len(data):
            raise SipParseError("header section is not terminated by an empty line", None)
        found = (len(data) - (2 if data.endswith(b"\r\n") else 1), len(data))
    head_end, body_start = found
    text = data[start:head_end].decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[0], unfold_header_lines(lines[1:]), body_start


class StreamFramer:
    """Cut a reliable byte stream into whole SIP messages by Content-Length.

    ``feed(data)`` returns the complete messages (bytes, each one message) now available.
    Raises :class:`SipParseError` / :class:`MessageTooLarge` when the stream cannot be
    framed any more; the connection must then be closed.
    """

    __slots__ = ("_buffer", "_error", "max_message_size")

    def __init__(self, max_message_size: int = 65535) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._error: SipParseError | None = None

    @property
    def failed(self) -> SipParseError | None:
        """The framing error met after the messages the last :meth:`feed` returned, if any.

        Messages framed before an error in the same chunk are still returned (RFC 4475
        ``dblreq``: a good request followed by garbage); the caller dispatches them, then
        closes the connection because of this error.
        """
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        out: list[bytes] = []
        try:
            self._frame(out)
        except SipParseError as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _frame(self, out: list[bytes]) -> None:
        while True:
            skip = skip_keepalives(self._buffer)
            if skip:
                del self._buffer[:skip]
            if not self._buffer:
                return
            found = find_head_end(self._buffer)
            if found is None:
                if len(self._buffer) > self.max_message_size:
                    raise MessageTooLarge("header section exceeds the message size limit", None)
                return
            head_end, body_start = found
            if head_end > self.max_message_size:
                raise MessageTooLarge("header section exceeds the message size limit", None)
            head = bytes(self._buffer[:head_end])
            lengths = _CL_RE.findall(head)
            if not lengths:
                raise SipParseError("missing Content-Length on a stream transport", partial=head)
            if len(lengths) > 1:
                raise SipParseError("multiple Content-Length header fields", partial=head)
            text = lengths[0].strip()
            if not text.isdigit() or len(text) > 10:
                raise SipParseError("invalid Content-Length", partial=head)
            total = body_start + int(text)
            if total > self.max_message_size:
                raise MessageTooLarge("message exceeds the message size limit", partial=head)
            if len(self._buffer) < total:
                return
            out.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
