"""SIP requests and responses: parse, validate, serialise, answer (RFC 3261 section 7, 8.2, 25).

Theory of operation: :func:`parse_message` reads one message from one datagram (or one
message already cut out of a stream by :class:`~siprec_recorder.sip.parser.StreamFramer`):

1. the head is split and unfolded (``parser.split_head``); CRLF keep-alives are skipped;
2. the start line decides request or response. Request lines are split on single spaces,
   trailing spaces tolerated (RFC 4475 section 3.1.2.10); a version other than ``SIP/2.0``
   is answered ``505``;
3. the body is framed by Content-Length: absent means "the rest of the datagram"
   (section 18.3, RFC 4475 section 3.4.1), larger than what arrived is a ``400``, extra
   octets after the body are ignored (RFC 4475 section 3.1.1.8); several Content-Length
   fields or a non-numeric one are a ``400``;
4. the fields every transaction depends on are validated: Via, From, To, Call-ID, CSeq
   present and single-valued where the grammar says so, From/To/Contact well-formed
   name-addrs, the CSeq number below 2**31 and its method equal to the request method,
   Max-Forwards at most 255, the Request-URI a URI without escaped headers.

Errors in requests carry ``status_hint=400`` (``505`` for the version, ``513`` for size) and,
whenever the header section was readable, ``partial``: the unvalidated request, from which
:func:`make_response` can still build the ``400``. Errors in responses carry
``status_hint=None``: a broken response is dropped (section 18.1.2).

Semantic checks that belong to a UAS and not to a parser (unknown URI scheme -> 416,
unknown ``Require`` -> 420, unknown Content-Type -> 415, unacceptable ``Accept`` -> 406) are
offered by :func:`uas_precheck`, which the upper layer calls when it wants them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from siprec_recorder.sip.errors import MessageTooLarge, SipParseError
from siprec_recorder.sip.headers import CSeq, Headers, Via, split_list
from siprec_recorder.sip.parser import split_head
from siprec_recorder.sip.uri import NameAddr, SipUri, Uri, is_token, parse_uri

__all__ = [
    "REASON_PHRASES",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "make_response",
    "new_tag",
    "parse_message",
    "uas_precheck",
]

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip

_VERSION_RE = re.compile(r"SIP/\d+\.\d+", re.I)
_SINGLE_HEADERS = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Type")


def new_tag() -> str:
    """A fresh random tag for To/From (RFC 3261 section 19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


class _Common:
    """Accessors shared by requests and responses (mixin over ``headers``)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        value = CSeq.parse(self.headers.get("CSeq") or "")
        return value.number, value.method

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def via(self) -> Via:
        top = self.headers.get("Via")
        if top is None:
            raise SipParseError("missing Via")
        return Via.parse(top)

    @property
    def branch(self) -> str | None:
        return self.via.branch

    @property
    def from_addr(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "", "From")

    @property
    def to_addr(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "", "To")

    @property
    def from_tag(self) -> str | None:
        return self.from_addr.tag

    @property
    def to_tag(self) -> str | None:
        return self.to_addr.tag

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def _serialize(self, start_line: str) -> bytes:
        headers = self.headers.without("Content-Length").add("Content-Length", str(len(self.body)))
        return (
            start_line.encode("utf-8", "surrogateescape")
            + b"\r\n"
            + headers.serialize()
            + (b"\r\n" + self.body)
        )


@dataclass(frozen=True, slots=True)
class SipRequest(_Common):
    """A SIP request. ``uri`` is the Request-URI text as received."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    @property
    def request_uri(self) -> Uri:
        return parse_uri(self.uri)

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is (re)computed from the body."""
        return self._serialize(f"{self.method} {self.uri} {self.version}")


@dataclass(frozen=True, slots=True)
class SipResponse(_Common):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is (re)computed from the body."""
        return self._serialize(f"{self.version} {self.status} {self.reason}")


SipMessage = SipRequest | SipResponse


def parse_message(data: bytes, *, max_size: int = 65535) -> SipRequest | SipResponse:
    """Parse and validate one message; raise :class:`SipParseError` when it is unacceptable."""
    start_line, pairs, body_start = split_head(data)
    headers = Headers.of(pairs)
    start_line = start_line.rstrip(" ")
    if start_line.upper().startswith("SIP/"):
        return _parse_response(start_line, headers, data, body_start, max_size)
    return _parse_request(start_line, headers, data, body_start, max_size)


def _body(headers: Headers, data: bytes, body_start: int) -> bytes:
    lines = headers.get_lines("Content-Length")
    available = len(data) - body_start
    if not lines:
        return data[body_start:]
    if len(lines) > 1:
        raise SipParseError("multiple Content-Length header fields")
    text = lines[0].strip()
    if text.startswith("-"):
        raise SipParseError("negative Content-Length")
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise SipParseError("invalid Content-Length")
    length = int(text)
    if length > available:
        raise SipParseError("Content-Length larger than the message")
    return data[body_start : body_start + length]


def _parse_request(
    start_line: str, headers: Headers, data: bytes, body_start: int, max_size: int
) -> SipRequest:
    parts = start_line.split(" ")
    partial = SipRequest(parts[0] if is_token(parts[0]) else "", "", headers)
    try:
        if len(data) > max_size:
            raise MessageTooLarge("message exceeds the size limit")
        if len(parts) != 3 or not all(parts):
            raise SipParseError("malformed Request-Line")
        method, uri, version = parts
        if not is_token(method):
            raise SipParseError("invalid method in Request-Line")
        if not _VERSION_RE.fullmatch(version):
            raise SipParseError("malformed SIP-Version in Request-Line")
        if version.upper() != "SIP/2.0":
            raise SipParseError("SIP version not supported", 505)
        try:
            ruri = parse_uri(uri)
        except SipParseError as exc:
            raise SipParseError(f"invalid Request-URI: {exc.message}") from None
        if isinstance(ruri, SipUri) and ruri.headers:
            raise SipParseError("invalid Request-URI: headers are not allowed")
        body = _body(headers, data, body_start)
        _validate_common(headers)
        cseq = CSeq.parse(headers.get("CSeq") or "")
        if cseq.method != method:
            raise SipParseError("CSeq method does not match the Request-Line")
        _validate_request_headers(headers)
    except SipParseError as exc:
        if exc.partial is None:
            exc.partial = partial
        raise
    return SipRequest(method, uri, headers, body, "SIP/2.0")


def _parse_response(
    start_line: str, headers: Headers, data: bytes, body_start: int, max_size: int
) -> SipResponse:
    try:
        if len(data) > max_size:
            raise MessageTooLarge("message exceeds the size limit", None)
        version, _, rest = start_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipParseError("SIP version not supported", None)
        if len(code) != 3 or not code.isascii() or not code.isdigit():
            raise SipParseError("malformed Status-Code")
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError("Status-Code out of range")
        body = _body(headers, data, body_start)
        _validate_common(headers)
    except SipParseError as exc:
        exc.status_hint = None  # never answer a response (section 18.1.2)
        raise
    return SipResponse(status, reason, headers, body, "SIP/2.0")


def _validate_common(headers: Headers) -> None:
    missing = [n for n in ("Via", "From", "To", "Call-ID", "CSeq") if not headers.get_lines(n)]
    if missing:
        raise SipParseError("missing required header field(s): " + ", ".join(missing))
    for name in _SINGLE_HEADERS:
        if len(headers.get_lines(name)) > 1:
            raise SipParseError(f"multiple {name} header fields")
    call_id = headers.get("Call-ID") or ""
    if not call_id or any(c in call_id for c in " \t"):
        raise SipParseError("invalid Call-ID")
    CSeq.parse(headers.get("CSeq") or "")
    for name in ("From", "To"):
        NameAddr.parse(headers.get(name) or "", name)
    for via in headers.get_all("Via"):
        Via.parse(via)
    if any(not item for line in headers.get_lines("Via") for item in split_list(line)):
        raise SipParseError("empty Via value")


def _validate_request_headers(headers: Headers) -> None:
    mf = headers.get("Max-Forwards")
    if mf is not None and (not mf.isascii() or not mf.isdigit() or int(mf) > 255):
        raise SipParseError("Max-Forwards is not a number from 0 to 255")
    for contact in headers.get_all("Contact"):
        if contact != "*":
            NameAddr.parse(contact, "Contact")
    if any(not item for line in headers.get_lines("Contact") for item in split_list(line)):
        raise SipParseError("empty Contact value")


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
    server: str | None = None,
) -> SipResponse:
    """Build a response to ``request`` (RFC 3261 section 8.2.6.2).

    Via (all values, in order), From, To, Call-ID and CSeq are copied as received; a To tag
    is added for every status above 100 when the request had none (``to_tag`` or a fresh
    random one); Record-Route is copied into 101-299 answers (section 12.1.1). ``headers``
    are appended; Content-Type is set when ``content_type`` is given; Content-Length is
    always computed at serialisation.
    """
    out = Headers()
    src = request.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        lines = src.get_lines(name)
        for value in lines if name == "Via" else lines[:1]:
            if name == "To" and status > 100:
                value = _with_to_tag(value, to_tag)
            out = out.add(name, value)
    if 100 < status < 300:
        for value in src.get_lines("Record-Route"):
            out = out.add("Record-Route", value)
    if server:
        out = out.add("Server", server)
    for name, value in headers:
        out = out.add(name, value)
    if content_type is not None and "Content-Type" not in out:
        out = out.add("Content-Type", content_type)
    return SipResponse(
        status, reason if reason is not None else REASON_PHRASES.get(status, ""), out, body
    )


def _with_to_tag(value: str, to_tag: str | None) -> str:
    try:
        if NameAddr.parse(value, "To").tag is not None:
            return value
    except SipParseError:
        return value
    return f"{value};tag={to_tag or new_tag()}"


def uas_precheck(
    request: SipRequest,
    *,
    supported_extensions: Iterable[str] = (),
    accepted_types: Iterable[str] = ("application/sdp", "multipart/mixed"),
    uri_schemes: Iterable[str] = ("sip", "sips", "tel"),
) -> tuple[int, str, tuple[tuple[str, str], ...]] | None:
    """The UAS checks of RFC 3261 section 8.2.2-8.2.3 a SIPREC server wants before it acts.

    Returns ``(status, reason, extra_headers)`` for the first failed check, or ``None``:
    unknown Request-URI scheme -> 416; ``Require`` of an unsupported option -> 420 with
    ``Unsupported``; an INVITE body of a type not in ``accepted_types`` -> 415 with
    ``Accept``; an ``Accept`` header on an INVITE that allows none of ``application/sdp``,
    ``multipart/*`` -> 406. (RFC 4475 sections 3.3.2, 3.3.3, 3.3.5, 3.3.6, 3.3.15.)
    """
    schemes = {s.lower() for s in uri_schemes}
    scheme = request.uri.partition(":")[0].lower()
    if scheme not in schemes:
        return 416, REASON_PHRASES[416], ()
    supported = {s.lower() for s in supported_extensions}
    unsupported = [r for r in request.headers.get_all("Require") if r.lower() not in supported]
    if unsupported and request.method not in ("ACK", "CANCEL"):
        return 420, REASON_PHRASES[420], (("Unsupported", ", ".join(unsupported)),)
    if request.method == "INVITE":
        types = [t.lower() for t in accepted_types]
        ctype = (request.content_type or "").split(";")[0].strip().lower()
        if request.body and ctype not in types:
            return 415, REASON_PHRASES[415], (("Accept", ", ".join(accepted_types)),)
        accept = [a.split(";")[0].strip().lower() for a in request.headers.get_all("Accept")]
        if "Accept" in request.headers and not any(
            a in ("*/*", "application/*", "application/sdp", "multipart/*", "multipart/mixed")
            for a in accept
        ):
            return 406, REASON_PHRASES[406], ()
    return None
