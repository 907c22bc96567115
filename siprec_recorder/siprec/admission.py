"""Admission of new sessions: what a source may ask of the recorder before it is answered.

Theory of operation
-------------------
The recorder is shared by every SRC that may reach it, so no one source may take what the
others need (the audit of a hostile network: one source held every RTP port with 64 m-lines
per INVITE). :class:`Admission` keeps, per source host, the sessions and RTP port pairs it
holds, and checks a new INVITE against the budgets of :class:`Budgets` before any port is
opened. A refusal names the budget that ran out (``Warning: 399 - "budget: ..."``) so that an
operator reading the SRC's logs knows which key to raise; it is ``503`` with Retry-After for
a resource that frees up (ports, sessions) and ``488`` for an offer that could never fit (more
m-lines than one session may have, or than the source's whole port budget).

A re-INVITE or UPDATE that adds streams to a live session is checked the same way
(:meth:`Admission.check_change`, with the net change: streams it removes with ``port 0``
give their ports back first). Refused, it leaves the session as it was (RFC 3261 section
14.2: a non-2xx answer to a re-INVITE changes nothing), still recording.

:func:`is_siprec_invite` tells a SIPREC session (RFC 7866 section 6.1.1: the SRC's Contact
carries ``+sip.src``; real SRCs also mark it as below) from a plain call, which a scanner
(``svwar -m INVITE``) sends and which must not become a recording.

Behind a proxy (Kamailio's dispatcher in front of several nodes) every INVITE arrives from the
proxy, so the allowlist and the per-source budgets would see one source. :func:`origin_behind`
finds the SRC's own address in the Via chain, but only through proxies the operator trusts
(``[sip] trusted_proxies``): each trusted hop vouches for the address of the hop before it
(the ``received`` parameter it stamps on that hop's Via, else its sent-by), and the first hop
that is not trusted is the origin. A Via that no trusted proxy vouched for is never believed.

Sans-IO: no sockets, no clock; the server calls :meth:`Admission.check`,
:meth:`Admission.hold` and :meth:`Admission.release`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..sip.headers import Via

__all__ = [
    "Admission",
    "Budgets",
    "Origin",
    "Refusal",
    "SourcePolicy",
    "TokenBuckets",
    "TrustedProxies",
    "is_siprec_invite",
]


@dataclass(frozen=True, slots=True)
class Budgets:
    """The limits (``0`` means no limit beyond the recorder's own capacity)."""

    max_media_lines: int = 16  # m-lines one INVITE may ask us to receive
    max_ports_per_source: int = 0  # RTP/RTCP port pairs one source host may hold at once


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a new session is not admitted, and how to say it on the wire."""

    status: int
    reason_phrase: str
    budget: str  # the name in the Warning header and in the counters

    @property
    def headers(self) -> list[tuple[str, str]]:
        out = [("Warning", f'399 - "budget: {self.budget}"')]
        if self.status == 503:
            out.append(("Retry-After", "10"))
        return out


_SRC_PARAM = re.compile(r";\s*\+?sip\.src\b|;\s*src\s*(?:[;=,]|$)", re.I)


def is_siprec_invite(headers: Mapping[str, str] | object, body: bytes = b"") -> bool:
    """A SIPREC INVITE, as real SRCs mark it: ``+sip.src`` on the Contact (RFC 7866), or
    ``;src`` (BroadWorks, Webex: the draft's form), ``siprec`` in Require or Supported, or
    RFC 7865 metadata in the body. A scanner's INVITE has none of these."""
    get = getattr(headers, "get", None)
    if get is None:
        return False
    if _SRC_PARAM.search(str(get("Contact") or "")):
        return True
    for name in ("Require", "Supported"):
        if "siprec" in (t.strip().lower() for t in str(get(name) or "").split(",")):
            return True
    return b"application/rs-metadata" in body.lower()


@dataclass(frozen=True, slots=True)
class Origin:
    """The SRC's own address, as the trusted proxy in front of it saw it."""

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


class TrustedProxies:
    """``[sip] trusted_proxies``: the proxies whose Via stamps say where a request came from."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks if net.version == ip.version)

    def origin_behind(self, transport_host: str, vias: Sequence[Via]) -> Origin | None:
        """The first untrusted hop of a request that came from ``transport_host`` with
        ``vias`` (top first); None when ``transport_host`` is not a trusted proxy or the
        chain names no hop before the proxies (then the proxy itself is the source)."""
        if not self.trusts(transport_host):
            return None
        # vias[0] is the trusted proxy's own; vias[i] for i >= 1 was vouched for by hop i-1.
        for via in vias[1:]:
            host = (via.received or via.host).strip("[]")
            rport = via.rport
            port = int(rport) if rport and rport.isdigit() else via.port
            if not self.trusts(host):
                return Origin(host, port)
        return None


class Admission:
    """Per-source holdings, the budgets they are checked against, and the refusal counts."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self._ports: dict[str, int] = {}
        # budget name -> refusals, for every budget the SRS enforces (these and the ones it
        # checks itself: sessions, invites-per-second...); exported on /metrics.
        self.refused: dict[str, int] = {}

    def ports_held(self, host: str) -> int:
        return self._ports.get(host, 0)

    def count(self, budget: str) -> None:
        """One refusal for ``budget`` (the name in the Warning header)."""
        self.refused[budget] = self.refused.get(budget, 0) + 1

    def check(self, host: str, media_lines: int) -> Refusal | None:
        """Whether a new INVITE from ``host`` asking for ``media_lines`` streams fits."""
        return self.check_change(host, media_lines, media_lines)

    def check_change(self, host: str, session_lines: int, added: int) -> Refusal | None:
        """Whether a session of ``host`` may hold ``session_lines`` streams, ``added`` more
        port pairs than it holds now (a new INVITE: both the same; a re-INVITE or UPDATE
        that adds streams: the net change, ports it gives back with ``port 0`` deducted).

        ``488`` when the session could never fit (more lines than one session, or than the
        source's whole budget, may have), ``503`` when the source's other sessions hold the
        ports it would need (they free up).
        """
        b = self.budgets
        refusal = None
        if b.max_media_lines and session_lines > b.max_media_lines:
            refusal = Refusal(488, "Not Acceptable Here", "media-lines-per-invite")
        elif b.max_ports_per_source and session_lines > b.max_ports_per_source:
            refusal = Refusal(488, "Not Acceptable Here", "rtp-ports-per-source")
        elif (
            b.max_ports_per_source
            and added > 0
            and self.ports_held(host) + added > b.max_ports_per_source
        ):
            refusal = Refusal(503, "Service Unavailable", "rtp-ports-per-source")
        if refusal is not None:
            self.count(refusal.budget)
        return refusal

    def hold(self, host: str, pairs: int) -> None:
        if pairs:
            self._ports[host] = self._ports.get(host, 0) + pairs

    def release(self, host: str, pairs: int) -> None:
        left = self._ports.get(host, 0) - pairs
        if left > 0:
            self._ports[host] = left
        else:
            self._ports.pop(host, None)


class SourcePolicy:
    """Allowlist (CIDRs; empty means loopback only) and a per-source token bucket."""

    def __init__(self, cidrs: Iterable[str], rate: float, burst: int) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        self.rate = rate
        self.burst = max(1, burst)
        self._invites = TokenBuckets(self.burst, rate)
        self._reject_bucket: tuple[float, float] = (500.0, 0.0)

    def allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        if not self.networks:
            return ip.is_loopback or (
                isinstance(ip, ipaddress.IPv6Address)
                and ip.ipv4_mapped is not None
                and ip.ipv4_mapped.is_loopback
            )
        return any(ip in net for net in self.networks if net.version == ip.version)

    def take_reject(self, now: float, per_second: float = 500.0) -> bool:
        """One stateless 403 to an unlisted source; False past ``per_second`` overall."""
        tokens, last = self._reject_bucket
        tokens = min(per_second, tokens + (now - last) * per_second)
        if tokens < 1.0:
            self._reject_bucket = (tokens, now)
            return False
        self._reject_bucket = (tokens - 1.0, now)
        return True

    def take(self, host: str, now: float) -> bool:
        """One new INVITE from ``host``; False when over its rate."""
        return self.rate <= 0 or self._invites.take(host, now)


class TokenBuckets:
    """Token buckets by key (``burst`` tokens, ``rate`` a second), bounded in keys."""

    MAX_KEYS = 100_000

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = float(max(1, burst))
        self.rate = rate
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - last) * self.rate)

    def ready(self, key: Hashable, now: float) -> bool:
        """Whether :meth:`take` would succeed now (takes nothing)."""
        return self._tokens(key, now) >= 1.0

    def take(self, key: Hashable, now: float) -> bool:
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.MAX_KEYS:  # forget the oldest half
            for old in list(self._buckets)[: self.MAX_KEYS // 2]:
                del self._buckets[old]
        return True
