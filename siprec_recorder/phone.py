"""Phone numbers out of SIP/tel URIs, in one canonical form for indexing and policy.

Theory of operation
-------------------
SRCs name participants in many ways (``tel:+32...``, ``sip:+32...@host;user=phone``,
``sip:0470...@host``, ``0032...``, bare digits, ``aor`` values without a scheme). Policy
and the index need one form, so every address goes through :func:`normalize_number`:

1. :func:`user_part` takes the user part of the URI (RFC 3261 section 19.1.1, RFC 3966):
   display name and angle brackets, scheme, ``@host``, URI/user parameters and headers
   are dropped, ``%xx`` escapes are decoded.  A ``sip:`` URI without ``@`` whose host is
   a phone number (BroadWorks' ``sip:8638254725``) yields that number.
2. Visual separators (RFC 3966 ``visual-separator``: ``-`` ``.`` ``(`` ``)`` and space) are
   removed (and a bracketed trunk prefix "(0)" after "+CC").  A user part with other
   letters (``alice``, ``Extension-016190619``) is only taken as a number when it holds
   a run of at least 7 digits: a short digit run inside a name (``agent112``) must not
   turn into an emergency short code.
3. The digits are classified, in this order: ``+`` prefix (already E.164); at most 6
   digits (a short code, e.g. ``112``, kept bare); the international prefix (``00``);
   the national (trunk) prefix (``0``, the configured country code is put in front);
   11 digits or more (taken to include the country code); otherwise the number is
   ambiguous and kept bare -- unless the configuration has no national prefix, in which
   case the country code is put in front.
4. ``;phone-context=+CC`` (RFC 3966 section 5.1.5) on a local number supplies the
   country code instead of the configured one; a domain-name context is ignored.

The result only ever contains ``+`` and ASCII digits, or is ``None`` when the address
holds no usable digits (``sip:alice@host``).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

__all__ = ["normalize_number", "number_forms", "path_safe_digits", "user_part"]

_SCHEME_RE = re.compile(r"^(sips?|tel|pres|im):", re.IGNORECASE)
_PHONE_CONTEXT_RE = re.compile(r";\s*phone-context\s*=\s*([^;@>?,\s]*)", re.IGNORECASE)
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() \t")
_DIGIT_RUN_RE = re.compile(r"[0-9]+")
_HOSTLESS_NUMBER_RE = re.compile(r"^\+?[0-9][0-9().-]*$")
_MIN_DIGITS_IN_NAME = 7
_MAX_SHORT_CODE = 6
_MIN_WITH_COUNTRY_CODE = 11
_MAX_INPUT = 1024


def user_part(aor: str) -> str:
    """Return the user part of a SIP/tel URI or address, without parameters.

    ``'sip:+3247...@h;user=phone'`` -> ``'+3247...'``; ``'tel:+32..;phone-context=x'`` ->
    ``'+32..'``; ``'"Bob" <sip:bob@h>'`` -> ``'bob'``; ``'1234'`` -> ``'1234'``;
    ``'sip:host'`` (no user) -> ``''``; but ``'sip:8638254725'`` -> ``'8638254725'``
    (BroadWorks puts the number where the host belongs; an IPv4 address stays a host).
    """
    text = aor[:_MAX_INPUT].strip()
    if "<" in text:
        inner = text.split("<", 1)[1]
        text = inner.split(">", 1)[0].strip()
    match = _SCHEME_RE.match(text)
    scheme = match.group(1).lower() if match else None
    if match:
        text = text[match.end() :]
    if scheme in ("sip", "sips"):
        if "@" not in text:
            return _hostless_number(text)
        text = text.rsplit("@", 1)[0]
    elif "@" in text:
        text = text.rsplit("@", 1)[0]
    text = text.split(";", 1)[0].split("?", 1)[0]
    if scheme in ("sip", "sips", None) and ":" in text:
        text = text.split(":", 1)[0]  # user:password
    return urllib.parse.unquote(text).strip()


def _hostless_number(hostport: str) -> str:
    """``sip:8638254725`` (BroadWorks): a "host" that is a phone number is the user."""
    host = hostport.split(";", 1)[0].split("?", 1)[0].strip()
    if not _HOSTLESS_NUMBER_RE.match(host):
        return ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return ""  # a dotted IPv4 address such as sip:10.0.0.31


def _context_country_digits(aor: str) -> str | None:
    match = _PHONE_CONTEXT_RE.search(aor[:_MAX_INPUT])
    if not match:
        return None
    context = urllib.parse.unquote(match.group(1)).strip()
    if not context.startswith("+"):
        return None  # a domain name: says nothing about the country
    digits = "".join(ch for ch in context[1:] if ch.isascii() and ch.isdigit())
    return digits or None


def _digits_of(user: str) -> tuple[bool, str] | None:
    """Return (had a leading '+', digits), or None when the user part is no number."""
    if user.startswith("+"):
        user = user.replace("(0)", "")  # '+32 (0)470 ...': the trunk prefix shown in brackets
    compact = user.translate(_VISUAL_SEPARATORS)
    plus = compact.startswith("+")
    body = compact[1:] if plus else compact
    if body and body.isascii() and body.isdigit():
        return plus, body
    runs = _DIGIT_RUN_RE.findall(body if body.isascii() else _ascii_only(body))
    if not runs:
        return None
    longest = max(runs, key=len)
    if len(longest) < _MIN_DIGITS_IN_NAME:
        return None
    return False, longest


def _ascii_only(text: str) -> str:
    return "".join(ch if ch.isascii() else " " for ch in text)


def normalize_number(
    aor_or_digits: str,
    *,
    country_code: str = "32",
    national_prefix: str = "0",
    international_prefix: str = "00",
) -> str | None:
    """Return the canonical form of a participant's number (see the module docstring).

    ``'+32470000001'``, ``'0032470000001'``, ``'0470000001'``, ``'tel:+32470000001'`` and
    ``'sip:+32470000001@host;user=phone'`` all give ``'+32470000001'``; ``'112'`` gives
    ``'112'``; ``'sip:alice@host'`` gives ``None``.
    """
    found = _digits_of(user_part(aor_or_digits))
    if found is None:
        return None
    plus, digits = found
    if not digits:
        return None
    if plus:
        return "+" + digits
    if len(digits) <= _MAX_SHORT_CODE:
        return digits
    if international_prefix and digits.startswith(international_prefix):
        rest = digits[len(international_prefix) :]
        return "+" + rest if rest else digits
    context_cc = _context_country_digits(aor_or_digits)
    cc = context_cc if context_cc is not None else country_code
    if national_prefix and digits.startswith(national_prefix):
        return "+" + cc + digits[len(national_prefix) :]
    if context_cc is not None:
        return "+" + context_cc + digits
    if len(digits) >= _MIN_WITH_COUNTRY_CODE:
        return "+" + digits
    if not national_prefix:
        return "+" + country_code + digits
    return digits


def number_forms(typed: str, country_code: str) -> list[str]:
    """The forms a number typed by a user (search box, ``--number``) may have in the index.

    The canonical form first (:func:`normalize_number`), then the typed user part when it
    differs: an address with no usable digits is indexed as its user part (``alice``,
    ``agent112``). ``[]`` when nothing is left of ``typed``.
    """
    forms: list[str] = []
    canonical = normalize_number(typed, country_code=country_code)
    if canonical:
        forms.append(canonical)
    raw = user_part(typed)
    if raw and raw not in forms:
        forms.append(raw)
    return forms


def path_safe_digits(number: str | None) -> str:
    """Return ``number`` reduced to ASCII digits for use in a file path.

    ``'+32470000001'`` -> ``'32470000001'``; ``None`` or no digits -> ``'unknown'``.
    """
    if not number:
        return "unknown"
    digits = "".join(ch for ch in number if ch in "0123456789")
    return digits or "unknown"
