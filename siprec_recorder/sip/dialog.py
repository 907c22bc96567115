"""Dialog state for the requests a UA sends in a dialog (RFC 3261 sections 12, 13.2.2.4, 15.1.1).

Theory of operation: a dialog is created on either side of an INVITE answered with 2xx.
As the UAS (the recorder), :meth:`Dialog.from_invite` records the dialog identifiers
(Call-ID, local tag = our To tag, remote tag = their From tag), the remote target (their
Contact) and the route set (the INVITE's Record-Route, in order, section 12.1.1). As the UAC
(the replay tool's SRC), :meth:`Dialog.from_response` takes them from the INVITE we sent and
its 2xx: local tag = our From tag, remote tag = their To tag, remote target = the 2xx's
Contact, route set = the 2xx's Record-Route in *reverse* order (section 12.1.2), local CSeq =
the INVITE's.

:meth:`Dialog.request` builds an in-dialog request -- the BYE the recorder sends when RTP
times out, the SRC's BYE -- with the next local CSeq; :meth:`Dialog.ack` builds the ACK of a
2xx, which is an in-dialog request too but carries the CSeq number of the INVITE it
acknowledges (section 13.2.2.4). Both follow the route set as section 12.2.1.1 says: when
the first route is a loose router (``;lr``) the Request-URI is the remote target and the
route set goes into Route headers; when it is a strict router, the Request-URI is that
first route's URI and the Route headers are the rest of the route set followed by the
remote target. :meth:`Dialog.next_hop` is the URI the request goes to first (the first
route, else the remote target). The Via is left to the caller or the transport, which knows
the address it sends from. Pure data, no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from siprec_recorder.sip.headers import Headers
from siprec_recorder.sip.message import SipRequest, SipResponse
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
    """One side of a dialog created by an INVITE answered with 2xx (we answered it: UAS, or
    we sent it: UAC)."""

    id: DialogId
    local_uri: str  # our address: their To as received (UAS), our From (UAC); tag replaced
    remote_uri: str  # their address with their tag: their From (UAS), the 2xx's To (UAC)
    remote_target: str  # their Contact URI
    route_set: tuple[str, ...]  # in the order our requests visit them
    local_cseq: int
    remote_cseq: int

    @classmethod
    def from_invite(cls, invite: SipRequest, local_tag: str) -> Dialog:
        """The UAS side: the dialog our 2xx (To tag ``local_tag``) to ``invite`` creates."""
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

    @classmethod
    def from_response(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The UAC side: the dialog the 2xx ``response`` to our ``invite`` creates (12.1.2).

        The remote target is the 2xx's Contact (the INVITE's Request-URI when it has none);
        the route set is its Record-Route reversed, so the first route is the proxy nearest
        to us."""
        contacts = response.headers.get_all("Contact")
        target = invite.uri
        if contacts:
            target = NameAddr.parse(contacts[0], "Contact").uri.serialize()
        return cls(
            DialogId(invite.call_id, invite.from_tag or "", response.to_tag or ""),
            invite.headers.get("From") or "",
            response.headers.get("To") or "",
            target,
            tuple(reversed(response.headers.get_all("Record-Route"))),
            invite.cseq[0],
            0,  # the remote CSeq stays empty until the peer sends a request (12.1.2)
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
        request = self._build(method, cseq, body, content_type, extra)
        return replace(self, local_cseq=cseq), request

    def ack(
        self,
        invite_cseq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        """The ACK of a 2xx to the INVITE (or re-INVITE) sent with CSeq ``invite_cseq``:
        routed like any in-dialog request, CSeq ``<invite_cseq> ACK`` (section 13.2.2.4).
        The dialog's CSeq does not advance."""
        return self._build("ACK", invite_cseq, body, content_type, extra)

    def _build(
        self,
        method: str,
        cseq: int,
        body: bytes,
        content_type: str | None,
        extra: tuple[tuple[str, str], ...],
    ) -> SipRequest:
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
        return SipRequest(method, target, Headers.of(pairs), body)

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
