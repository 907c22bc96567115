"""Events the SIP core hands to the layer above, and the addresses they refer to.

Theory of operation: :class:`~siprec_recorder.sip.core.SipCore` turns bytes into these
past-tense facts, drained with ``next_event()`` and dispatched with ``match``. An event is
emitted once per fact: retransmissions are absorbed by the transactions below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from siprec_recorder.sip.message import SipRequest, SipResponse

__all__ = [
    "AckReceived",
    "Address",
    "Event",
    "InviteCancelled",
    "MessageRejected",
    "RequestReceived",
    "ResponseReceived",
    "TransactionKey",
    "TransactionTimedOut",
    "Transport",
]

Transport = Literal["udp", "tcp", "tls"]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from / goes to. ``connection_id`` names a TCP/TLS connection."""

    transport: Transport
    host: str
    port: int
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Identifies a transaction (RFC 3261 section 17.1.3 / 17.2.3).

    ``branch`` is the Via branch (or, for RFC 2543 peers without the ``z9hG4bK`` cookie, a
    key built from Call-ID, CSeq number and From tag); ``method`` is the CSeq method with
    ACK folded into INVITE; ``role`` separates our client transactions from server ones.
    """

    branch: str
    sent_by: str
    method: str
    role: Literal["server", "client"] = "server"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (not a retransmission) arrived; answer it with ``SipCore.respond``."""

    request: SipRequest
    transaction: TransactionKey
    source: Address


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx we sent (the end of our 2xx retransmissions)."""

    request: SipRequest
    source: Address


@dataclass(frozen=True, slots=True)
class InviteCancelled:
    """A CANCEL matched a pending INVITE; the core already answered the CANCEL with 200.
    The layer above should now answer the INVITE with 487."""

    transaction: TransactionKey
    cancel: SipRequest


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """A transaction gave up: no ACK for our final response (Timer H, or 64*T1 of 2xx
    retransmissions), or no final response to our request (Timer F)."""

    transaction: TransactionKey


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to a request we sent (first copy of each; retransmissions absorbed)."""

    response: SipResponse
    transaction: TransactionKey


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """Input was refused; ``status`` is what the core answered, ``None`` when it dropped it."""

    source: Address
    reason: str
    status: int | None


Event = (
    RequestReceived
    | AckReceived
    | InviteCancelled
    | TransactionTimedOut
    | ResponseReceived
    | MessageRejected
)
