"""Emergency numbers: recognise a call to an emergency service in any form an SRC sends.

Theory of operation
-------------------
A call that involves an emergency service is never recorded; only a counter is kept. The list
(``[policy] emergency_numbers``) holds short codes (``112``, ``911``, ...) and service URNs
(``urn:service:sos``, RFC 5031). A participant matches when:

* it is a service URN equal to a listed URN or a sub-service of it
  (``urn:service:sos.police`` matches ``urn:service:sos``), compared case-insensitively;
* or its *user part* equals a listed code. The user part is taken from ``tel:``, ``sip:`` and
  ``sips:`` URIs and from bare strings alike: display names and ``<>`` are dropped, then URI
  parameters and headers (``;phone-context=...``, ``;user=phone``, ``?...``), percent escapes
  are decoded and visual separators (``-``, ``.``, ``(``, ``)``, spaces) removed. So ``112``,
  ``tel:112``, ``sip:112@host``, ``<sip:112;phone-context=+32@host;user=phone>`` and
  ``112;phone-context=example.com`` all match ``112``.
* Decision: a listed short code dialled with the *configured* country code in front
  (``+32112``, ``0032112`` with ``country_code = "32"``) matches too. Networks do present
  emergency calls that way after normalising to E.164, and no subscriber number is that
  short, so the match cannot hide a real number. Other countries' prefixes (``+33112``) are
  not matched: we cannot tell a country code from a number without a numbering plan.

Matching errs on the side of "emergency": a match means the call is not recorded. The
functions never raise on odd input; a string we cannot read is simply not an emergency.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from .settings import DEFAULT_EMERGENCY_NUMBERS

__all__ = ["EmergencyMatcher", "emergency_user_part", "is_emergency"]

_SEPARATORS = str.maketrans("", "", "-.() \t")
_MAX_INPUT = 1024


def _strip_name_addr(value: str) -> str:
    value = value.strip()
    lt = value.find("<")
    if lt != -1:
        gt = value.find(">", lt + 1)
        value = value[lt + 1 : gt if gt != -1 else len(value)]
    return value.strip()


def emergency_user_part(value: str) -> str | None:
    """The dialable part of an AOR or bare number, lower-cased, for matching; None if empty.

    A URN comes back whole (``"urn:service:sos.police"``).
    """
    value = _strip_name_addr(value[:_MAX_INPUT])
    lower = value.lower()
    if lower.startswith("urn:"):
        return lower.split(";", 1)[0].strip()
    for scheme in ("sips:", "sip:", "tel:"):
        if lower.startswith(scheme):
            value = value[len(scheme) :]
            if scheme != "tel:":
                at = value.rfind("@")
                if at != -1:
                    value = value[:at]
            break
    value = value.split("?", 1)[0].split(";", 1)[0]
    value = unquote(value).translate(_SEPARATORS).lower()
    return value or None


class EmergencyMatcher:
    """Matches AORs against an emergency list; built once, used on every INVITE."""

    __slots__ = ("_codes", "_country_prefixes", "_urns")

    def __init__(
        self,
        numbers: Iterable[str] = DEFAULT_EMERGENCY_NUMBERS,
        *,
        country_code: str = "32",
    ) -> None:
        codes: set[str] = set()
        urns: list[str] = []
        for entry in numbers:
            part = emergency_user_part(entry)
            if part is None:
                continue
            if part.startswith("urn:"):
                urns.append(part)
            else:
                codes.add(part)
        self._codes = frozenset(codes)
        self._urns = tuple(urns)
        cc = "".join(ch for ch in country_code if ch.isdigit())
        self._country_prefixes = ("+" + cc, "00" + cc) if cc else ()

    def matches(self, aor: str) -> bool:
        """Whether ``aor`` (any form: URI, name-addr, bare digits, URN) is an emergency service."""
        part = emergency_user_part(aor)
        if part is None:
            return False
        if part.startswith("urn:"):
            return any(part == urn or part.startswith(urn + ".") for urn in self._urns)
        if part in self._codes:
            return True
        for prefix in self._country_prefixes:
            if part.startswith(prefix) and part[len(prefix) :] in self._codes:
                return True
        return False

    def any_matches(self, aors: Iterable[str]) -> bool:
        """Whether any of ``aors`` is an emergency service."""
        return any(self.matches(a) for a in aors)


def is_emergency(
    aor: str,
    numbers: Iterable[str] = DEFAULT_EMERGENCY_NUMBERS,
    *,
    country_code: str = "32",
) -> bool:
    """One-off form of :meth:`EmergencyMatcher.matches`."""
    return EmergencyMatcher(numbers, country_code=country_code).matches(aor)
