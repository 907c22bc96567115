"""Dialog state a UAS needs to end a call itself (RFC 3261 section 12, 15.1.1).

Theory of operation: when the recorder accepts an INVITE, :meth:`Dialog.from_invite` records
the dialog identifiers (Call-ID, local tag = our To tag, remote tag = their From tag), the
remote target (their Contact) and the route set (Record-Route, in order, section 12.1.1).
:meth:`Dialog.request` builds an in-dialog request -- typically the BYE the recorder sends
when RTP times out -- with the next local CSeq, following the route set as section 12.2.1.1
says: when the first route is a loose router (``;lr``) the Request-URI is the remote target
and the route set goes into Route headers; when it is a strict router, the Request-URI is
that first route's URI and the Route headers are the rest of the route set followed by the
remote target. :meth:`Dialog.next_hop` is the URI the request goes to first (the first route,
else the remote target). The Via is left to the caller or the transport, which knows the
address it sends from. Pure data, no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from siprec_recorder.sip.headers import Headers
from siprec_recorder.sip.message import SipRequest
from siprec_recorder.sip.uri import NameAddr, SipUri

__all__ = ["Dialog", "DialogId"]


@dataclass(frozen=True, slots=True)
class DialogId:
    """``(Call-ID, local tag, remote tag)`` (section 12)."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass(frozen=True, slots=True)
class Dialog:
    """The UAS side of a dialog created by an INVITE we answered with 2xx."""

    id: DialogId
    local_uri: str  # their To, as received (without our tag)
    remote_uri: str  # their From, as received
    remote_target: str  # their Contact URI
    route_set: tuple[str, ...]
    local_cseq: int
    remote_cseq: int

    @classmethod
    def from_invite(cls, invite: SipRequest, local_tag: str) -> Dialog:
        contacts = invite.headers.get_all("Contact")
        target = invite.uri
        if contacts:
            target = NameAddr.parse(contacts[0], "Contact").uri.serialize()
        return cls(
            DialogId(invite.call_id, local_tag, invite.from_tag or ""),
            invite.headers.get("To") or "",
            invite.headers.get("From") or "",
            target,
            tuple(invite.headers.get_all("Record-Route")),
            # our first request uses a fresh random CSeq space (section 12.1.1)
            secrets.randbelow(2**16) + 1,
            invite.cseq[0],
        )

    def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> tuple[Dialog, SipRequest]:
        """Build the next in-dialog request; returns the dialog with its CSeq advanced."""
        cseq = self.local_cseq + 1
        to_value = NameAddr.parse(self.remote_uri, "From").serialize()
        from_value = NameAddr.parse(self.local_uri, "To").with_param("tag", self.id.local_tag)
        pairs = [
            ("From", from_value.serialize()),
            ("To", to_value),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
        ]
        target = self.remote_target
        routes = list(self.route_set)
        if routes and not self._loose(routes[0]):
            # RFC 3261 12.2.1.1: a strict first hop gets the request addressed to itself
            first = NameAddr.parse(routes[0], "Route").uri
            if isinstance(first, SipUri):
                first = replace(first, headers=())
            target = first.serialize()
            routes = [*routes[1:], f"<{self.remote_target}>"]
        pairs += [("Route", r) for r in routes]
        if content_type:
            pairs.append(("Content-Type", content_type))
        pairs += list(extra)
        request = SipRequest(method, target, Headers.of(pairs), body)
        return replace(self, local_cseq=cseq), request

    @staticmethod
    def _loose(route: str) -> bool:
        uri = NameAddr.parse(route, "Route").uri
        return isinstance(uri, SipUri) and any(k.lower() == "lr" for k, _ in uri.params)

    def next_hop(self) -> SipUri | None:
        """Where an in-dialog request goes first: the first route's URI (loose or strict),
        else the remote target (None when that is not a SIP URI)."""
        text = self.route_set[0] if self.route_set else f"<{self.remote_target}>"
        uri = NameAddr.parse(text, "Route").uri
        return uri if isinstance(uri, SipUri) else None
