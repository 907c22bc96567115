"""Header fields: the ordered header list, compact names, Via and CSeq (RFC 3261 section 7.3, 20).

Theory of operation: :class:`Headers` keeps ``(name, value)`` pairs in wire order, with
compact names (``i``, ``v``, ``m``...) expanded to their long form and names canonicalised
(``cOnTaCt`` -> ``Contact``); values are stored unfolded (continuation lines joined by one
space, RFC 3261 section 7.3.1) and stripped, but otherwise as received, so copying Via/From/To
into a response preserves them. Lookups are case-insensitive. For headers whose grammar is a
comma-separated list (Via, Contact, Route, Accept, Require...), :meth:`Headers.get_all`
splits each line on commas outside quotes and ``<>``; for all others it returns the lines.

:class:`Via` and :class:`CSeq` are the two values the transaction layer reads; they parse
leniently around ``/``, ``;`` and ``=`` (RFC 4475 section 3.1.1.1) and strictly elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from siprec_recorder.sip.errors import SipParseError
from siprec_recorder.sip.uri import (
    Params,
    format_hostport,
    format_params,
    is_token,
    param,
    parse_params,
    split_hostport,
)

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "Headers",
    "MAX_CSEQ",
    "Via",
    "canonical_name",
    "split_list",
]

#: RFC 3261 section 7.3.3 and the IANA registry of compact forms
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info",
        "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
        "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-ID",
        "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
        "Event", "Expires", "From", "Identity", "Identity-Info", "In-Reply-To",
        "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
        "P-Asserted-Identity", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
        "Proxy-Require", "RAck", "Reason", "Record-Route", "Recv-Info", "Refer-To",
        "Referred-By", "Reject-Contact", "Reply-To", "Request-Disposition", "Require",
        "Retry-After", "Route", "RSeq", "Server", "Session-Expires", "Subject", "Supported",
        "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
        "WWW-Authenticate",
    )
}  # fmt: skip

#: headers whose value is a comma-separated list (RFC 3261 section 7.3.1)
_LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language",
        "Error-Info", "In-Reply-To", "Proxy-Require", "Reason", "Record-Route", "Require",
        "Route", "Supported", "Unsupported", "Via", "Warning", "P-Asserted-Identity",
        "Accept-Contact", "Reject-Contact", "Recv-Info",
    )
)  # fmt: skip

#: CSeq numbers must be below 2**31 (RFC 3261 section 8.1.1.5)
MAX_CSEQ = 2**31 - 1


def canonical_name(name: str) -> str:
    """Expand compact forms and normalise the case of well-known header names."""
    lname = name.lower()
    if len(lname) == 1 and lname in COMPACT_FORMS:
        return COMPACT_FORMS[lname]
    return _CANONICAL.get(lname, name)


@functools.lru_cache(maxsize=512)
def _lower_name(name: str) -> str:
    """``canonical_name(name).lower()``, remembered (header names are a small set)."""
    return canonical_name(name).lower()


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quoted strings and ``<...>``; strip items."""
    if '"' not in value and "<" not in value:  # nothing can hide a comma: the common case
        return [item.strip(" \t") for item in value.split(",")]
    items: list[str] = []
    depth_angle = False
    in_quote = False
    escaped = False
    start = 0
    for i, c in enumerate(value):
        if in_quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            depth_angle = True
        elif c == ">":
            depth_angle = False
        elif c == "," and not depth_angle:
            items.append(value[start:i].strip(" \t"))
            start = i + 1
    items.append(value[start:].strip(" \t"))
    return items


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered, case-insensitive multimap of header fields (compact names expanded)."""

    fields: tuple[tuple[str, str], ...] = ()
    # Lines by lower-case name, built on the first lookup (a request is asked for the same
    # few headers many times on its way through the stack).
    _by_name: dict[str, list[str]] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """Build from ``(name, value)`` pairs, canonicalising the names."""
        return cls(tuple((canonical_name(k), v) for k, v in pairs))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (the first list element for list headers)."""
        values = self.get_all(name)
        return values[0] if values else None

    def _lines(self, lname: str) -> list[str]:
        index = self._by_name
        if index is None:
            index = {}
            for k, v in self.fields:
                index.setdefault(k.lower(), []).append(v)
            object.__setattr__(self, "_by_name", index)
        return index.get(lname, [])

    def get_lines(self, name: str) -> list[str]:
        """Every header line called ``name``, unsplit."""
        return list(self._lines(_lower_name(name)))

    def get_all(self, name: str) -> list[str]:
        """All values of ``name``; list headers are comma-split, empty elements dropped."""
        lname = _lower_name(name)
        lines = self._lines(lname)
        if lname not in _LIST_HEADERS:
            return list(lines)
        return [item for line in lines for item in split_list(line) if item]

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._lines(_lower_name(name)))

    def __len__(self) -> int:
        return len(self.fields)

    def with_(self, name: str, value: str) -> Headers:
        """Replace every ``name`` line by one line with ``value`` (at the first one's place,
        or appended when absent)."""
        cname = canonical_name(name)
        lname = cname.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for k, v in self.fields:
            if k.lower() == lname:
                if not placed:
                    out.append((cname, value))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((cname, value))
        return Headers(tuple(out))

    def add(self, name: str, value: str) -> Headers:
        """Append one more ``name`` line."""
        return Headers((*self.fields, (canonical_name(name), value)))

    def without(self, name: str) -> Headers:
        """Drop every ``name`` line."""
        lname = canonical_name(name).lower()
        return Headers(tuple((k, v) for k, v in self.fields if k.lower() != lname))

    def replace_first_element(self, name: str, value: str) -> Headers:
        """Replace the first list element of the first ``name`` line (e.g. the top Via)."""
        lname = canonical_name(name).lower()
        out = list(self.fields)
        for i, (k, v) in enumerate(out):
            if k.lower() == lname:
                rest = split_list(v)[1:]
                out[i] = (k, ", ".join([value, *rest]))
                break
        return Headers(tuple(out))

    def serialize(self) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in self.fields).encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;received=...;rport`` (section 20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipParseError("malformed Via sent-protocol")
        name, version = parts[0].strip(" \t"), parts[1].strip(" \t")
        rest = parts[2].lstrip(" \t")
        i = 0
        while i < len(rest) and rest[i] not in " \t":
            i += 1
        transport, rest = rest[:i], rest[i:].lstrip(" \t")
        if not (is_token(name) and is_token(version) and is_token(transport)):
            raise SipParseError("malformed Via sent-protocol")
        hp, semi, ptext = rest.partition(";")
        if "," in hp or not hp.strip(" \t"):
            raise SipParseError("malformed Via sent-by")
        host, port = split_hostport(hp, "Via sent-by")
        params = parse_params(";" + ptext, "Via") if semi else ()
        return cls(transport.upper(), host, port, params, f"{name.upper()}/{version}")

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param(self.params, "received")

    @property
    def rport(self) -> str | None:
        """``""`` when present without a value, the port text when filled, else ``None``."""
        return param(self.params, "rport")

    @property
    def sent_by(self) -> str:
        return format_hostport(self.host.lower(), self.port)

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        """Set ``name`` (replacing in place, or appending)."""
        lname = name.lower()
        out: list[tuple[str, str | None]] = []
        placed = False
        for k, v in self.params:
            if k.lower() == lname:
                if not placed:
                    out.append((k, value))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((name, value))
        return Via(self.transport, self.host, self.port, tuple(out), self.protocol)

    def serialize(self) -> str:
        hostport = format_hostport(self.host, self.port)
        return f"{self.protocol}/{self.transport} {hostport}{format_params(self.params)}"

    def __str__(self) -> str:
        return self.serialize()


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: <number> <method>`` (RFC 3261 section 20.16); number below 2**31."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipParseError("malformed CSeq")
        num, method = parts
        if not num.isascii() or not num.isdigit() or len(num) > 10:
            raise SipParseError("CSeq number is not a number below 2**31")
        number = int(num)
        if number > MAX_CSEQ:
            raise SipParseError("CSeq number is not a number below 2**31")
        if not is_token(method):
            raise SipParseError("CSeq method is not a token")
        return cls(number, method)

    def serialize(self) -> str:
        return f"{self.number} {self.method}"

    def __str__(self) -> str:
        return self.serialize()
