"""URIs and name-addr values (RFC 3261 section 19.1, 20.10, 25.1; RFC 3966; RFC 5118).

Theory of operation: :func:`parse_uri` turns the text of a URI into one of three frozen
values -- :class:`SipUri` (``sip:``/``sips:``), :class:`TelUri` (``tel:``) or
:class:`AbsoluteUri` (any other well-formed scheme, kept opaque so that the upper layer can
answer ``416`` as RFC 4475 section 3.3.2 expects). Escapes (``%xx``) are kept as received:
comparing and rendering them is the caller's business, and keeping them means a URI
re-serialises byte for byte.

:class:`NameAddr` is the value of From/To/Contact/Route: an optional display name, a URI,
and header parameters (``tag``, ``expires``...). Its parser is strict where RFC 4475 wants a
``400`` (unbalanced quotes, unquoted display names with non-token characters, whitespace
inside ``<>``, an addr-spec that carries ``?``/``,``/``;`` that would be ambiguous) and liberal
about linear whitespace elsewhere.

IPv6 references follow RFC 5118: ``[2001:db8::10]`` with an optional ``:port`` after the
bracket. The three-colon form of section 4.10 is tolerated on receipt.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from siprec_recorder.sip.errors import SipParseError

__all__ = [
    "AbsoluteUri",
    "NameAddr",
    "Params",
    "SipUri",
    "TelUri",
    "Uri",
    "format_hostport",
    "format_params",
    "is_token",
    "param",
    "parse_params",
    "parse_uri",
    "split_hostport",
    "unquote",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?|[A-Za-z0-9]")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
_LWS = " \t"
Params = tuple[tuple[str, str | None], ...]


def _err(message: str) -> SipParseError:
    return SipParseError(message)


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 ``token``."""
    return bool(_TOKEN_RE.fullmatch(text))


def _check_host(host: str, what: str) -> str:
    """Validate a host (hostname, IPv4 or bracketed IPv6 reference); return it unchanged."""
    if not host:
        raise _err(f"empty host in {what}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise _err(f"unterminated IPv6 reference in {what}")
        inner = host[1:-1]
        if not _IPV6_CHARS_RE.fullmatch(inner):
            raise _err(f"invalid IPv6 reference in {what}")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            # RFC 5118 section 4.10: tolerate "2001:db8:::192.0.2.1" on receipt.
            try:
                ipaddress.IPv6Address(inner.replace(":::", "::"))
            except ValueError:
                raise _err(f"invalid IPv6 reference in {what}") from None
        return host
    if not _HOSTNAME_RE.fullmatch(host):
        raise _err(f"invalid host in {what}")
    return host


def split_hostport(text: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` where host may be an IPv6 reference (RFC 5118 section 4.3)."""
    text = text.strip(_LWS)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _err(f"unterminated IPv6 reference in {what}")
        host, rest = text[: end + 1], text[end + 1 :].strip(_LWS)
        if rest and not rest.startswith(":"):
            raise _err(f"junk after IPv6 reference in {what}")
        port_text = rest[1:].strip(_LWS) if rest else None
    else:
        host, sep, port_text_raw = text.partition(":")
        host = host.strip(_LWS)
        port_text = port_text_raw.strip(_LWS) if sep else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
            raise _err(f"invalid port in {what}")
        port = int(port_text)
        if port > 65535:
            raise _err(f"port out of range in {what}")
    return _check_host(host, what), port


def format_hostport(host: str, port: int | None) -> str:
    """Inverse of :func:`split_hostport`."""
    return host if port is None else f"{host}:{port}"


def parse_params(text: str, what: str) -> Params:
    """Parse ``;name[=value]`` parameters (the leading ``;`` included), LWS tolerated.

    Values may be tokens, quoted strings (kept with their quotes) or IPv6 references.
    An empty parameter (``;;``) is an error (RFC 4475 section 3.1.2.1).
    """
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _LWS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise _err(f"expected ';' before parameter in {what}")
        i += 1
        while i < n and text[i] in _LWS:
            i += 1
        start = i
        while i < n and text[i] not in "=;" + _LWS:
            i += 1
        name = text[start:i]
        if not name or not is_token(name):
            raise _err(f"empty or invalid parameter name in {what}")
        while i < n and text[i] in _LWS:
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _LWS:
                i += 1
            if i < n and text[i] == '"':
                end = _quoted_end(text, i, what)
                value = text[i:end]
                i = end
            else:
                start = i
                while i < n and text[i] not in ";" + _LWS:
                    i += 1
                value = text[start:i]
                if not value:
                    raise _err(f"empty value for parameter {name!r} in {what}")
                if not (is_token(value) or value.startswith("[") or _is_param_chars(value)):
                    raise _err(f"invalid value for parameter {name!r} in {what}")
        out.append((name, value))
    return tuple(out)


def _is_param_chars(value: str) -> bool:
    # paramchar of RFC 3261 (URI parameters) is wider than token: []/:&+$ and escapes.
    return all(c.isascii() and (c.isalnum() or c in "-_.!~*'()%[]/:&+$`") for c in value)


def _quoted_end(text: str, start: int, what: str) -> int:
    """Index just past the closing quote of the quoted string that starts at ``start``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise _err(f"unterminated quoted string in {what}")


def format_params(params: Params) -> str:
    """Render parameters as ``;name=value;flag``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def param(params: Params, name: str) -> str | None:
    """The value of the first parameter called ``name`` (case-insensitive); ``""`` for flags."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 section 19.1.1)."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        uri = parse_uri(text)
        if not isinstance(uri, SipUri):
            raise _err("not a sip: or sips: URI")
        return uri

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def serialize(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.extend((":", self.password))
            out.append("@")
        out.append(format_hostport(self.host, self.port))
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def __str__(self) -> str:
        return self.serialize()


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number as written, and its parameters."""

    number: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def serialize(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    def __str__(self) -> str:
        return self.serialize()


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A syntactically valid URI of a scheme we do not interpret (kept opaque)."""

    scheme: str
    opaque: str

    def serialize(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def __str__(self) -> str:
        return self.serialize()


Uri = SipUri | TelUri | AbsoluteUri


_BAD_URI_CHAR = re.compile(r'[\x00-\x20\x7f<>"]')  # controls, space, DEL, <, >, "


def _check_uri_chars(text: str) -> None:
    if _BAD_URI_CHAR.search(text):
        raise _err("invalid character in URI")


def parse_uri(text: str) -> Uri:
    """Parse a URI; raise :class:`SipParseError` when it is not well formed."""
    _check_uri_chars(text)
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.fullmatch(scheme):
        raise _err("URI has no valid scheme")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips"):
        return _parse_sip_uri(lscheme, rest)
    if lscheme == "tel":
        number, _, ptext = rest.partition(";")
        if not number:
            raise _err("empty tel: number")
        return TelUri(number, parse_params(";" + ptext, "tel URI") if ptext else ())
    if not rest:
        raise _err("empty URI after scheme")
    return AbsoluteUri(scheme, rest)


def _parse_sip_uri(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        if not userinfo:
            raise _err("empty user part in SIP URI")
        u, colon, pw = userinfo.partition(":")
        user, password = u, (pw if colon else None)
    rest, qmark, htext = rest.partition("?")
    hostport, semi, ptext = rest.partition(";")
    # An IPv6 reference cannot contain ';', so the first ';' ends the hostport.
    host, port = split_hostport(hostport, "SIP URI")
    params = parse_params(";" + ptext, "SIP URI") if semi else ()
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in htext.split("&"):
            k, eq, v = item.partition("=")
            if not k or not eq:
                raise _err("malformed header in SIP URI")
            headers.append((k, v))
    return SipUri(scheme, user, password, host, port, params, tuple(headers))


def _split_display(text: str, what: str) -> tuple[str | None, str]:
    """Split a leading display name (quoted or tokens) from ``<uri>...``."""
    s = text.lstrip(_LWS)
    if s.startswith('"'):
        end = _quoted_end(s, 0, what)
        return s[:end], s[end:].lstrip(_LWS)
    lt = s.find("<")
    if lt < 0:
        return None, s
    display = s[:lt].strip(_LWS)
    for word in display.split():
        if not is_token(word):
            raise _err(f"display name in {what} is neither tokens nor a quoted string")
    return (display or None), s[lt:]


def unquote(text: str) -> str:
    """Remove the quotes and backslash escapes of a quoted string (other text unchanged)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
    return text


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <uri> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 section 20.10).

    ``display_name`` is kept as received (with its quotes, when quoted); :attr:`display`
    gives it unquoted.
    """

    display_name: str | None
    uri: Uri
    params: Params = ()

    @classmethod
    def parse(cls, text: str, what: str = "name-addr") -> NameAddr:
        display, rest = _split_display(text, what)
        if rest.startswith("<"):
            gt = rest.find(">")
            if gt < 0:
                # Tolerated: a value that ends without its '>' (Metaswitch CFS Contacts in
                # the miarec SIPp scenarios). Anything after whitespace is still an error.
                if any(c in rest for c in " \t"):
                    raise _err(f"missing '>' in {what}")
                rest, gt = rest + ">", len(rest)
            inner = rest[1:gt]
            if inner != inner.strip(_LWS + "\r\n"):
                raise _err(f"whitespace inside <> in {what}")
            uri = parse_uri(inner)
            params = parse_params(rest[gt + 1 :], what)
            return cls(display, uri, params)
        if display is not None:
            raise _err(f"display name without <uri> in {what}")
        # addr-spec form: URI parameters would be ambiguous, so ';' starts header params
        # and '?' / ',' are not allowed (RFC 3261 section 20.10).
        spec = rest.strip(_LWS)
        end = 0
        while end < len(spec) and spec[end] not in ";" + _LWS:
            end += 1
        uri_text, tail = spec[:end], spec[end:]
        if not uri_text:
            raise _err(f"empty URI in {what}")
        if "?" in uri_text or "," in uri_text:
            raise _err(f"URI with '?' or ',' must be enclosed in <> in {what}")
        return cls(None, parse_uri(uri_text), parse_params(tail, what))

    @property
    def display(self) -> str | None:
        return None if self.display_name is None else unquote(self.display_name)

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return NameAddr(self.display_name, self.uri, (*kept, (name, value)))

    def serialize(self) -> str:
        prefix = f"{self.display_name} " if self.display_name else ""
        return f"{prefix}<{self.uri.serialize()}>{format_params(self.params)}"

    def __str__(self) -> str:
        return self.serialize()
