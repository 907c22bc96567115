"""Transaction state machines (RFC 3261 section 17, RFC 6026), as tables.

Theory of operation: each transaction kind is a table ``(state, input) -> (next state,
actions)``. A :class:`Transaction` applies a row and returns :class:`Effect` values (bytes
to send, facts to report); it never touches a socket or a clock -- ``now`` is an argument
and timers are deadlines the core polls. A pair missing from a table means: for an input we
produce (sending a response), misuse of the API (:class:`LocalProtocolError`); for an input
the network produces (a retransmission, a stray response), ignore it.

Timers live in the transaction as ``name -> (deadline, interval)``. ``START_*`` sets one,
``RESTART_*`` doubles its interval (capped at T2) for the retransmission timers, the
``STOP_*`` actions clear them. Retransmission timers (G, E) are not started on reliable
transports; the wait timers (I, J, K) are zero there (section 17.2.2, 17.1.2.2).

The INVITE server transaction includes the ``Accepted`` state of RFC 6026 section 7.1: after
a 2xx it keeps absorbing INVITE retransmissions and retransmits the 2xx itself, starting at
T1 and doubling to T2 (RFC 3261 section 13.3.1.4) until an ACK arrives; after 64*T1 without
an ACK (Timer L) it reports a timeout. The ACK for a 2xx is reported once (``REPORT_ACK``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum, auto

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.sip.events import Address, TransactionKey
from siprec_recorder.sip.message import SipRequest, SipResponse

__all__ = [
    "CLIENT_NON_INVITE_TABLE",
    "MAGIC_COOKIE",
    "SERVER_INVITE_TABLE",
    "SERVER_NON_INVITE_TABLE",
    "Action",
    "Effect",
    "Kind",
    "TimerConfig",
    "Transaction",
    "TxInput",
    "TxState",
    "new_branch",
]

MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 96 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer base values in seconds (table 4): RTT estimate, cap, max lifetime."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: not in RFC 3261: a server transaction whose request the layer above never answers
    #: is dropped (and reported timed out) after this long, so that a lost request cannot
    #: hold a transaction slot forever. Ignored once a final response was sent.
    tu_guard: float = 300.0


class Kind(Enum):
    SERVER_INVITE = auto()
    SERVER_NON_INVITE = auto()
    CLIENT_NON_INVITE = auto()


class TxState(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    ACCEPTED = auto()  # RFC 6026
    CONFIRMED = auto()
    TERMINATED = auto()


class TxInput(Enum):
    REQUEST_RETRANSMITTED = auto()
    ACK_RECEIVED = auto()
    SENT_1XX = auto()
    SENT_2XX = auto()
    SENT_FAILURE = auto()  # 300-699
    RECEIVED_1XX = auto()
    RECEIVED_FINAL = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_G = auto()
    TIMER_G2XX = auto()  # 2xx retransmission, section 13.3.1.4
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_J = auto()
    TIMER_K = auto()
    TIMER_L = auto()
    TIMER_TU = auto()  # tu_guard, not RFC 3261


class Action(Enum):
    SEND_RESPONSE = auto()  # send the response given with the input; remember it
    RESEND_RESPONSE = auto()  # send the remembered last response again
    RESEND_REQUEST = auto()
    START_E = auto()
    RESTART_E = auto()
    START_F = auto()
    START_G = auto()
    RESTART_G = auto()
    START_G2XX = auto()
    RESTART_G2XX = auto()
    START_H = auto()
    START_I = auto()
    START_J = auto()
    START_K = auto()
    START_L = auto()
    START_TU = auto()
    STOP_RETRANSMIT = auto()  # clear G, G2XX, E
    STOP_ALL_TIMERS = auto()
    REPORT_RESPONSE = auto()
    REPORT_ACK = auto()
    REPORT_TIMEOUT = auto()


Row = tuple[TxState, tuple[Action, ...]]
S, In, A = TxState, TxInput, Action

#: RFC 3261 figure 7 (INVITE server transaction) with RFC 6026 figure 3 (Accepted state)
SERVER_INVITE_TABLE: dict[tuple[TxState, TxInput], Row] = {
    (S.PROCEEDING, In.REQUEST_RETRANSMITTED): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.SENT_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.SENT_2XX): (S.ACCEPTED, (A.SEND_RESPONSE, A.START_G2XX, A.START_L)),
    (S.PROCEEDING, In.SENT_FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.START_G, A.START_H)),
    (S.COMPLETED, In.REQUEST_RETRANSMITTED): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_G): (S.COMPLETED, (A.RESEND_RESPONSE, A.RESTART_G)),
    (S.COMPLETED, In.ACK_RECEIVED): (S.CONFIRMED, (A.STOP_ALL_TIMERS, A.START_I)),
    (S.COMPLETED, In.TIMER_H): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.ACCEPTED, In.REQUEST_RETRANSMITTED): (S.ACCEPTED, (A.RESEND_RESPONSE,)),
    (S.ACCEPTED, In.SENT_2XX): (S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.ACCEPTED, In.TIMER_G2XX): (S.ACCEPTED, (A.RESEND_RESPONSE, A.RESTART_G2XX)),
    (S.ACCEPTED, In.ACK_RECEIVED): (S.CONFIRMED, (A.STOP_RETRANSMIT, A.REPORT_ACK)),
    (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.PROCEEDING, In.TIMER_TU): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.CONFIRMED, In.REQUEST_RETRANSMITTED): (S.CONFIRMED, ()),
    (S.CONFIRMED, In.ACK_RECEIVED): (S.CONFIRMED, ()),
    (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, (A.STOP_ALL_TIMERS,)),
    (S.CONFIRMED, In.TIMER_L): (S.TERMINATED, (A.STOP_ALL_TIMERS,)),
}

#: RFC 3261 figure 8 (non-INVITE server transaction)
SERVER_NON_INVITE_TABLE: dict[tuple[TxState, TxInput], Row] = {
    (S.TRYING, In.REQUEST_RETRANSMITTED): (S.TRYING, ()),
    (S.TRYING, In.TIMER_TU): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.PROCEEDING, In.TIMER_TU): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.TRYING, In.SENT_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.TRYING, In.SENT_2XX): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.TRYING, In.SENT_FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.PROCEEDING, In.REQUEST_RETRANSMITTED): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.SENT_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.SENT_2XX): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.PROCEEDING, In.SENT_FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.COMPLETED, In.REQUEST_RETRANSMITTED): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_J): (S.TERMINATED, (A.STOP_ALL_TIMERS,)),
}

#: RFC 3261 figure 6 (non-INVITE client transaction)
CLIENT_NON_INVITE_TABLE: dict[tuple[TxState, TxInput], Row] = {
    (S.TRYING, In.TIMER_E): (S.TRYING, (A.RESEND_REQUEST, A.RESTART_E)),
    (S.TRYING, In.TIMER_F): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.TRYING, In.RECEIVED_1XX): (S.PROCEEDING, (A.REPORT_RESPONSE,)),
    (S.TRYING, In.RECEIVED_FINAL): (
        S.COMPLETED,
        (A.STOP_ALL_TIMERS, A.REPORT_RESPONSE, A.START_K),
    ),
    (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, (A.RESEND_REQUEST, A.RESTART_E)),
    (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, (A.STOP_ALL_TIMERS, A.REPORT_TIMEOUT)),
    (S.PROCEEDING, In.RECEIVED_1XX): (S.PROCEEDING, (A.REPORT_RESPONSE,)),
    (S.PROCEEDING, In.RECEIVED_FINAL): (
        S.COMPLETED,
        (A.STOP_ALL_TIMERS, A.REPORT_RESPONSE, A.START_K),
    ),
    (S.COMPLETED, In.RECEIVED_1XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RECEIVED_FINAL): (S.COMPLETED, ()),
    (S.COMPLETED, In.TIMER_K): (S.TERMINATED, (A.STOP_ALL_TIMERS,)),
}

TABLES: dict[Kind, dict[tuple[TxState, TxInput], Row]] = {
    Kind.SERVER_INVITE: SERVER_INVITE_TABLE,
    Kind.SERVER_NON_INVITE: SERVER_NON_INVITE_TABLE,
    Kind.CLIENT_NON_INVITE: CLIENT_NON_INVITE_TABLE,
}

_INITIAL_STATE = {
    Kind.SERVER_INVITE: S.PROCEEDING,
    Kind.SERVER_NON_INVITE: S.TRYING,
    Kind.CLIENT_NON_INVITE: S.TRYING,
}

_TIMER_INPUT = {
    "E": In.TIMER_E,
    "F": In.TIMER_F,
    "G": In.TIMER_G,
    "G2XX": In.TIMER_G2XX,
    "H": In.TIMER_H,
    "I": In.TIMER_I,
    "J": In.TIMER_J,
    "K": In.TIMER_K,
    "L": In.TIMER_L,
    "TU": In.TIMER_TU,
}
_RETRANSMIT_TIMERS = ("E", "G", "G2XX")
#: inputs produced by our own API calls: a missing row is a LocalProtocolError
_LOCAL_INPUTS = frozenset({In.SENT_1XX, In.SENT_2XX, In.SENT_FAILURE})


@dataclass(frozen=True, slots=True)
class Effect:
    """What applying a row asks for: ``send`` (data, destination) or ``report`` (an action)."""

    kind: str  # "send" | "report"
    data: bytes = b""
    destination: Address | None = None
    report: Action | None = None
    response: SipResponse | None = None


class Transaction:
    """One transaction: its state, last message, timers. Pure; driven by the core."""

    __slots__ = (
        "destination",
        "key",
        "kind",
        "last_response",
        "last_response_obj",
        "request",
        "request_data",
        "state",
        "timers",
        "config",
        "to_tag",
        "_last_interval",
        "scheduled_at",
    )

    def __init__(
        self,
        kind: Kind,
        key: TransactionKey,
        request: SipRequest | None,
        destination: Address,
        config: TimerConfig,
        *,
        request_data: bytes = b"",
    ) -> None:
        self.kind = kind
        self.key = key
        self.request = request
        self.request_data = request_data
        self.destination = destination
        self.config = config
        self.state = _INITIAL_STATE[kind]
        self.timers: dict[str, tuple[float, float]] = {}
        self.last_response: bytes | None = None
        self.last_response_obj: SipResponse | None = None
        self.to_tag: str | None = None
        self._last_interval = config.t1
        #: the deadline the core has queued for this transaction (owned by the core)
        self.scheduled_at: float | None = None

    def start_server(self, now: float) -> None:
        """Arm the guard against a layer above that never answers (``tu_guard``)."""
        self._start("TU", now)

    @property
    def reliable(self) -> bool:
        return self.destination.reliable

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def next_deadline(self) -> float | None:
        return min((d for d, _ in self.timers.values()), default=None)

    def start_client(self, now: float) -> list[Effect]:
        """Send the request for the first time and arm Timer E (unreliable) and F."""
        effects = [Effect("send", self.request_data, self.destination)]
        self._start("E", now)
        self._start("F", now)
        return effects

    def apply(
        self,
        event: TxInput,
        now: float,
        data: bytes | None = None,
        response: SipResponse | None = None,
    ) -> list[Effect]:
        """Apply one input; return the effects to carry out."""
        row = TABLES[self.kind].get((self.state, event))
        if row is None:
            if event in _LOCAL_INPUTS:
                raise LocalProtocolError(
                    f"cannot send that response in state {self.state.name} of {self.kind.name}"
                )
            return []
        self.state, actions = row
        effects: list[Effect] = []
        for action in actions:
            effects.extend(self._do(action, now, data, response))
        return effects

    def fire_timers(self, now: float) -> list[Effect]:
        """Apply every timer whose deadline has passed, earliest first."""
        effects: list[Effect] = []
        while self.timers and not self.terminated:
            name, (deadline, _) = min(self.timers.items(), key=lambda kv: kv[1][0])
            if deadline > now:
                break
            # keep the interval for RESTART_* (doubling)
            self._last_interval = self.timers.pop(name)[1]
            effects.extend(self.apply(_TIMER_INPUT[name], now))
        return effects

    # -- actions ---------------------------------------------------------------------------

    def _do(
        self, action: Action, now: float, data: bytes | None, response: SipResponse | None
    ) -> list[Effect]:
        if action is A.SEND_RESPONSE:
            assert data is not None
            self.last_response = data
            self.last_response_obj = response
            return [Effect("send", data, self.destination)]
        if action is A.RESEND_RESPONSE:
            if self.last_response is None:
                return []
            return [Effect("send", self.last_response, self.destination)]
        if action is A.RESEND_REQUEST:
            return [Effect("send", self.request_data, self.destination)]
        if action is A.STOP_RETRANSMIT:
            for name in _RETRANSMIT_TIMERS:
                self.timers.pop(name, None)
            return []
        if action is A.STOP_ALL_TIMERS:
            self.timers.clear()
            return []
        if action in (A.REPORT_RESPONSE, A.REPORT_ACK, A.REPORT_TIMEOUT):
            return [Effect("report", report=action, response=response)]
        name = action.name.split("_", 1)[1]
        if action.name.startswith("RESTART_"):
            self._restart(name, now)
        else:
            self._start(name, now)
        return []

    def _start(self, name: str, now: float) -> None:
        c = self.config
        reliable = self.reliable
        if name in ("E", "G") and reliable:
            return
        interval = {
            "E": c.t1,
            "G": c.t1,
            "G2XX": c.t1,
            "F": 64 * c.t1,
            "H": 64 * c.t1,
            "L": 64 * c.t1,
            "TU": c.tu_guard,
            "I": 0.0 if reliable else c.t4,
            "J": 0.0 if reliable else 64 * c.t1,
            "K": 0.0 if reliable else c.t4,
        }[name]
        self.timers[name] = (now + interval, interval)

    def _restart(self, name: str, now: float) -> None:
        interval = min(self._last_interval * 2, self.config.t2)
        if name == "E" and self.state is TxState.PROCEEDING:
            interval = self.config.t2  # section 17.1.2.2
        self.timers[name] = (now + interval, interval)
