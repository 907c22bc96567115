"""The sans-IO SIP core of a UAS: bytes in, events and datagrams out (RFC 3261 section 17, 18).

Theory of operation, in the manner of aioquic: the owner calls ``receive(data, source, now)``
for each datagram (or each message framed from a TCP/TLS stream), drains ``next_event()``,
answers with ``respond(tx, response, now)``, sends its own non-INVITE requests (BYE) with
``send_request``, fires ``handle_timer(now)`` at ``get_timer()`` and writes out
``datagrams_to_send()``. The core never reads a clock or touches a socket.

Receiving a request:

* malformed input answers ``400`` with the problem as reason phrase (``505``, ``513`` where
  apt) when the header section allows building a response, else it is dropped; either way a
  :class:`MessageRejected` is emitted. Malformed responses are dropped (section 18.1.2);
* the top Via gets ``received``/``rport`` filled in (section 18.2.1, RFC 3581), and answers go
  back to the source address (``rport``) or the Via port (section 18.2.2); on TCP/TLS to the
  same connection;
* a retransmission matches its server transaction (section 17.2.3, RFC 2543 fallback key
  when the branch lacks the magic cookie) and is absorbed; the last response is re-sent;
* an INVITE gets ``100 Trying`` at once (section 17.2.1); a new request becomes a
  :class:`RequestReceived`;
* an ACK for a non-2xx is absorbed by its INVITE transaction; an ACK for a 2xx is matched by
  Call-ID, CSeq number and From tag to the INVITE transaction in ``Accepted`` and reported
  once as :class:`AckReceived`;
* a CANCEL matching an INVITE transaction (section 9.2) is answered ``200`` by the core, and
  :class:`InviteCancelled` is emitted when the INVITE had no final response yet; a CANCEL
  matching nothing gets ``481``.

Responses are matched to our client transactions by branch and CSeq method; others are
dropped. Methods are not judged here: answering ``405``/``501`` is the upper layer's call.
Bounded: at most ``max_transactions`` live transactions (beyond: stateless ``503``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.sip.errors import MessageTooLarge, SipParseError
from siprec_recorder.sip.events import (
    AckReceived,
    Address,
    Event,
    InviteCancelled,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
)
from siprec_recorder.sip.headers import Via
from siprec_recorder.sip.message import SipRequest, SipResponse, make_response, parse_message
from siprec_recorder.sip.transaction import (
    MAGIC_COOKIE,
    Action,
    Effect,
    Kind,
    TimerConfig,
    Transaction,
    TxInput,
    TxState,
)

__all__ = ["SipCore", "TimerConfig", "server_key"]

#: a 400 can be matched by the client with these (RFC 4475 section 3.3.1 wants an answer
#: even when From, To and Call-ID are missing)
_REQUIRED_FOR_RESPONSE = ("Via", "CSeq")
#: cap on the events queued and not yet drained (beyond: oldest dropped)
MAX_PENDING_EVENTS = 10_000


def server_key(request: SipRequest) -> TransactionKey:
    """The server transaction key of ``request`` (RFC 3261 section 17.2.3).

    ACK is folded into INVITE. Without the magic cookie (RFC 2543 peers, and a bare
    ``z9hG4bK`` as in RFC 4475 section 3.2.1) the key is built from Call-ID, CSeq number,
    From tag and the top Via.
    """
    via = request.via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return TransactionKey(branch, via.sent_by, method)
    number, _ = request.cseq
    legacy = f"rfc2543:{request.call_id}:{number}:{request.from_tag or ''}:{via.serialize()}"
    return TransactionKey(legacy, via.sent_by, method)


def _response_destination(request: SipRequest, source: Address) -> Address:
    if source.reliable:
        return source
    try:
        via = request.via
    except SipParseError:
        return source
    if via.rport is not None:
        return source
    return Address(source.transport, source.host, via.port or 5060, None)


@dataclass(frozen=True, slots=True)
class _AckIndexKey:
    call_id: str
    cseq: int
    from_tag: str


class SipCore:
    """Sans-IO SIP core of a UAS with non-INVITE client transactions (for BYE)."""

    def __init__(
        self,
        timers: TimerConfig | None = None,
        *,
        max_message_size: int = 65535,
        server_header: str | None = "siprec-recorder",
        max_transactions: int = 20_000,
    ) -> None:
        self.timers = timers or TimerConfig()
        self.max_message_size = max_message_size
        self.server_header = server_header
        self.max_transactions = max_transactions
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._ack_index: dict[_AckIndexKey, TransactionKey] = {}
        # Liberal fallback: (Call-ID, From tag, our To tag) -> the INVITE awaiting its ACK.
        # Some SRCs (a BroadWorks pause/resume flow) put another CSeq number on the ACK.
        self._ack_dialog_index: dict[tuple[str, str, str], TransactionKey] = {}
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[bytes, Address]] = []
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._seq = itertools.count()

    # -- public API ----------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Handle one datagram, or one message framed from a stream."""
        if not data.strip(b"\r\n"):
            return  # keep-alive (RFC 5626 section 4.4.1 / RFC 3261 section 7.5)
        try:
            message = parse_message(data, max_size=self.max_message_size)
        except SipParseError as exc:
            self._reject(exc, source)
            return
        if isinstance(message, SipResponse):
            self._receive_response(message, now)
        else:
            self._receive_request(message, source, now)

    def reject_stream_head(self, head: bytes, source: Address, error: SipParseError) -> None:
        """Answer a stream message that cannot be framed (no/invalid Content-Length, too
        large: ``error`` from :class:`StreamFramer`) using its header section ``head``.
        The transport closes the connection afterwards."""
        answer = SipParseError(error.message, error.status_hint)
        if isinstance(error, MessageTooLarge):
            answer = MessageTooLarge(error.message, error.status_hint)
        try:
            parse_message(head + b"\r\n\r\n", max_size=0)
        except SipParseError as exc:
            answer.partial = exc.partial
        self._reject(answer, source)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def respond(self, transaction: TransactionKey, response: SipResponse, now: float) -> None:
        """Send ``response`` within server transaction ``transaction``."""
        tx = self._transactions.get(transaction)
        if tx is None or tx.kind is Kind.CLIENT_NON_INVITE:
            raise LocalProtocolError("no such server transaction (terminated or unknown)")
        if self.server_header and "Server" not in response.headers:
            response = SipResponse(
                response.status,
                response.reason,
                response.headers.add("Server", self.server_header),
                response.body,
                response.version,
            )
        status = response.status
        event = (
            TxInput.SENT_1XX
            if status < 200
            else TxInput.SENT_2XX
            if status < 300
            else TxInput.SENT_FAILURE
        )
        if tx.kind is Kind.SERVER_INVITE and status >= 200:
            tx.to_tag = _safe_to_tag(response)
        effects = tx.apply(event, now, response.serialize(), response)
        if tx.kind is Kind.SERVER_INVITE and 200 <= status < 300 and tx.request is not None:
            self._ack_index[_ack_key(tx.request)] = tx.key
            if tx.to_tag:
                dialog = (tx.request.call_id, tx.request.from_tag or "", tx.to_tag)
                self._ack_dialog_index[dialog] = tx.key
        self._carry_out(tx, effects)

    def send_request(self, request: SipRequest, destination: Address, now: float) -> TransactionKey:
        """Start a non-INVITE client transaction (e.g. BYE). The top Via must carry a
        ``z9hG4bK`` branch."""
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError("only non-INVITE client transactions are supported")
        try:
            branch = request.via.branch or ""
        except SipParseError as exc:
            raise LocalProtocolError(f"request needs a valid top Via: {exc.message}") from None
        if not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("request needs a Via branch starting with z9hG4bK")
        key = TransactionKey(branch, "", request.cseq[1], "client")
        if key in self._transactions:
            raise LocalProtocolError("a client transaction with that branch exists")
        tx = Transaction(
            Kind.CLIENT_NON_INVITE,
            key,
            request,
            destination,
            self.timers,
            request_data=request.serialize(),
        )
        self._transactions[key] = tx
        self._carry_out(tx, tx.start_client(now))
        return key

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            tx = self._transactions.get(key)
            if tx is None or tx.scheduled_at != deadline:
                continue  # stale entry
            tx.scheduled_at = None
            self._carry_out(tx, tx.fire_timers(now))

    def get_timer(self) -> float | None:
        """The earliest deadline at which ``handle_timer`` must be called, or ``None``."""
        while self._heap:
            deadline, _, key = self._heap[0]
            tx = self._transactions.get(key)
            if tx is not None and tx.scheduled_at == deadline:
                break
            heapq.heappop(self._heap)  # stale entry
        return self._heap[0][0] if self._heap else None

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    @property
    def transaction_count(self) -> int:
        return len(self._transactions)

    # -- internals -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if len(self._events) >= MAX_PENDING_EVENTS:
            self._events.popleft()
        self._events.append(event)

    def _send_stateless(self, response: SipResponse, destination: Address) -> None:
        self._outbox.append((response.serialize(), destination))

    def _reject(self, exc: SipParseError, source: Address) -> None:
        partial = exc.partial
        status = exc.status_hint
        if (
            status is not None
            and isinstance(partial, SipRequest)
            and partial.method != "ACK"
            and all(partial.headers.get_lines(n) for n in _REQUIRED_FOR_RESPONSE)
        ):
            reason = exc.message.replace("\r", " ").replace("\n", " ")
            if isinstance(exc, MessageTooLarge):
                reason = "Message Too Large"
            response = make_response(partial, status, reason, server=self.server_header)
            self._send_stateless(response, _response_destination(partial, source))
            self._emit(MessageRejected(source, exc.message, status))
            return
        self._emit(MessageRejected(source, exc.message, None))

    def _receive_response(self, response: SipResponse, now: float) -> None:
        try:
            branch = response.via.branch or ""
            method = response.cseq[1]
        except SipParseError:
            return
        tx = self._transactions.get(TransactionKey(branch, "", method, "client"))
        if tx is None:
            return  # section 18.1.2: no match, discard
        event = TxInput.RECEIVED_1XX if response.status < 200 else TxInput.RECEIVED_FINAL
        self._carry_out(tx, tx.apply(event, now, response=response))

    def _receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        key = server_key(request)
        request = _stamp_via(request, source)
        if request.method == "ACK":
            self._receive_ack(request, key, source, now)
            return
        existing = self._transactions.get(key)
        if existing is not None:
            self._carry_out(existing, existing.apply(TxInput.REQUEST_RETRANSMITTED, now))
            return
        destination = _response_destination(request, source)
        if len(self._transactions) >= self.max_transactions:
            self._send_stateless(
                make_response(request, 503, server=self.server_header), destination
            )
            self._emit(MessageRejected(source, "too many transactions", 503))
            return
        kind = Kind.SERVER_INVITE if request.method == "INVITE" else Kind.SERVER_NON_INVITE
        tx = Transaction(kind, key, request, destination, self.timers)
        tx.start_server(now)
        self._transactions[key] = tx
        if request.method == "CANCEL":
            self._receive_cancel(request, tx, now)
            return
        effects: list[Effect] = []
        if kind is Kind.SERVER_INVITE:
            trying = make_response(request, 100, server=self.server_header)
            effects = tx.apply(TxInput.SENT_1XX, now, trying.serialize(), trying)
        self._carry_out(tx, effects)  # also queues the tu_guard timer
        self._emit(RequestReceived(request, key, source))

    def _receive_ack(
        self, request: SipRequest, key: TransactionKey, source: Address, now: float
    ) -> None:
        tx = self._transactions.get(key)
        if tx is None:
            tx_key = self._ack_index.get(_ack_key(request))
            if tx_key is None:
                try:
                    dialog = (request.call_id, request.from_tag or "", request.to_tag or "")
                except SipParseError:
                    dialog = ("", "", "")
                tx_key = self._ack_dialog_index.get(dialog)
            tx = self._transactions.get(tx_key) if tx_key is not None else None
        if tx is None or tx.kind is not Kind.SERVER_INVITE:
            return  # stray ACK: nothing to do
        effects = tx.apply(TxInput.ACK_RECEIVED, now)
        if any(e.report is Action.REPORT_ACK for e in effects):
            self._emit(AckReceived(request, source))
            effects = [e for e in effects if e.report is not Action.REPORT_ACK]
        self._carry_out(tx, effects)

    def _receive_cancel(self, cancel: SipRequest, tx: Transaction, now: float) -> None:
        invite_key = TransactionKey(tx.key.branch, tx.key.sent_by, "INVITE")
        invite = self._transactions.get(invite_key)
        if invite is None:
            response = make_response(cancel, 481, server=self.server_header)
        else:
            response = make_response(cancel, 200, to_tag=invite.to_tag, server=self.server_header)
        self._carry_out(
            tx,
            tx.apply(
                TxInput.SENT_2XX if invite else TxInput.SENT_FAILURE,
                now,
                response.serialize(),
                response,
            ),
        )
        if invite is not None and invite.state is TxState.PROCEEDING:
            self._emit(InviteCancelled(invite_key, cancel))

    def _carry_out(self, tx: Transaction, effects: list[Effect]) -> None:
        for effect in effects:
            if effect.kind == "send" and effect.destination is not None:
                self._outbox.append((effect.data, effect.destination))
            elif effect.report is Action.REPORT_TIMEOUT:
                self._emit(TransactionTimedOut(tx.key))
            elif effect.report is Action.REPORT_RESPONSE and effect.response is not None:
                self._emit(ResponseReceived(effect.response, tx.key))
        if tx.terminated:
            self._forget(tx)
            return
        deadline = tx.next_deadline()
        if deadline is not None and deadline != tx.scheduled_at:
            # one live heap entry per transaction; superseded ones are skipped as stale
            tx.scheduled_at = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), tx.key))
        elif deadline is None:
            tx.scheduled_at = None

    def _forget(self, tx: Transaction) -> None:
        self._transactions.pop(tx.key, None)
        if tx.kind is Kind.SERVER_INVITE and tx.request is not None:
            ack_key = _ack_key(tx.request)
            if self._ack_index.get(ack_key) == tx.key:
                del self._ack_index[ack_key]
            dialog = (tx.request.call_id, tx.request.from_tag or "", tx.to_tag or "")
            if self._ack_dialog_index.get(dialog) == tx.key:
                del self._ack_dialog_index[dialog]


def _ack_key(request: SipRequest) -> _AckIndexKey:
    return _AckIndexKey(request.call_id, request.cseq[0], request.from_tag or "")


def _safe_to_tag(response: SipResponse) -> str | None:
    try:
        return response.to_tag
    except SipParseError:
        return None


def _stamp_via(request: SipRequest, source: Address) -> SipRequest:
    """Add ``received`` (and fill ``rport``) on the top Via (section 18.2.1, RFC 3581)."""
    try:
        via = request.via
    except SipParseError:
        return request
    changed: Via = via
    if via.host.strip("[]").lower() != source.host.lower():
        changed = changed.with_param("received", source.host)
    if via.rport == "":
        changed = changed.with_param("rport", str(source.port))
    if changed is via:
        return request
    headers = request.headers.replace_first_element("Via", changed.serialize())
    return SipRequest(request.method, request.uri, headers, request.body, request.version)
