"""Every row of every transaction table, and the timer arithmetic, with a fake clock."""

from __future__ import annotations

import pytest

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.sip.events import Address, TransactionKey
from siprec_recorder.sip.transaction import (
    TABLES,
    Action,
    Kind,
    TimerConfig,
    Transaction,
    TxInput,
    TxState,
)

UDP = Address("udp", "192.0.2.1", 5060)
TCP = Address("tcp", "192.0.2.1", 5060, 7)
CFG = TimerConfig(t1=0.5, t2=4.0, t4=5.0)
KEY = TransactionKey("z9hG4bKx", "192.0.2.1", "INVITE")
ROWS = [(kind, state, inp) for kind, table in TABLES.items() for (state, inp) in table]
_TIMER_OF = {"START_" + n: n for n in ("E", "F", "G", "G2XX", "H", "I", "J", "K", "L")}


def make(kind: Kind, state: TxState, destination: Address = UDP) -> Transaction:
    tx = Transaction(kind, KEY, None, destination, CFG, request_data=b"REQ")
    tx.state = state
    tx.last_response = b"LAST"
    tx.timers = {"G": (99.0, 1.0), "E": (99.0, 1.0), "H": (99.0, 32.0)}
    return tx


@pytest.mark.parametrize(("kind", "state", "inp"), ROWS, ids=lambda v: getattr(v, "name", v))
def test_row(kind: Kind, state: TxState, inp: TxInput) -> None:
    tx = make(kind, state)
    effects = tx.apply(inp, 10.0, b"NEW")
    next_state, actions = TABLES[kind][(state, inp)]
    assert tx.state is next_state
    expected_sends = [
        {Action.SEND_RESPONSE: b"NEW", Action.RESEND_RESPONSE: b"LAST"}.get(a, b"REQ")
        for a in actions
        if a in (Action.SEND_RESPONSE, Action.RESEND_RESPONSE, Action.RESEND_REQUEST)
    ]
    assert [e.data for e in effects if e.kind == "send"] == expected_sends
    assert [e.report for e in effects if e.kind == "report"] == [
        a for a in actions if a.name.startswith("REPORT_")
    ]
    for action in actions:
        if action.name in _TIMER_OF:
            assert _TIMER_OF[action.name] in tx.timers, action
        if action.name.startswith("RESTART_"):
            name = action.name.removeprefix("RESTART_")
            assert tx.timers[name][0] > 10.0
    if Action.STOP_ALL_TIMERS in actions:
        started = {_TIMER_OF[a.name] for a in actions if a.name in _TIMER_OF}
        assert set(tx.timers) == started
    if Action.STOP_RETRANSMIT in actions:
        assert not {"G", "E", "G2XX"} & set(tx.timers)


def test_missing_rows() -> None:
    """A response we send where the table has no row is misuse; network input is ignored."""
    for kind, table in TABLES.items():
        for state in TxState:
            for inp in TxInput:
                if (state, inp) in table:
                    continue
                tx = make(kind, state)
                if inp in (TxInput.SENT_1XX, TxInput.SENT_2XX, TxInput.SENT_FAILURE):
                    with pytest.raises(LocalProtocolError):
                        tx.apply(inp, 0.0, b"X")
                else:
                    assert tx.apply(inp, 0.0) == []
                    assert tx.state is state


def fire_until_quiet(tx: Transaction, horizon: float) -> list[tuple[float, bytes]]:
    sends: list[tuple[float, bytes]] = []
    while (deadline := tx.next_deadline()) is not None and deadline <= horizon:
        for effect in tx.fire_timers(deadline):
            if effect.kind == "send":
                sends.append((deadline, effect.data))
    return sends


def test_timer_g_doubles_to_t2_and_timer_h_ends() -> None:
    tx = Transaction(Kind.SERVER_INVITE, KEY, None, UDP, CFG)
    tx.apply(TxInput.SENT_FAILURE, 0.0, b"486")
    sends = fire_until_quiet(tx, 100.0)
    times = [t for t, _ in sends]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # T1, 2T1, 4T1, then T2
    assert tx.state is TxState.TERMINATED and max(times) <= 32.0


def test_2xx_retransmitted_until_64_t1() -> None:
    tx = Transaction(Kind.SERVER_INVITE, KEY, None, UDP, CFG)
    tx.apply(TxInput.SENT_2XX, 0.0, b"200")
    sends = fire_until_quiet(tx, 100.0)
    assert [t for t, _ in sends][:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(data == b"200" for _, data in sends)
    assert tx.state is TxState.TERMINATED


def test_reliable_transport_has_no_g_and_zero_i() -> None:
    tx = Transaction(Kind.SERVER_INVITE, KEY, None, TCP, CFG)
    tx.apply(TxInput.SENT_FAILURE, 0.0, b"486")
    assert set(tx.timers) == {"H"}
    tx.apply(TxInput.ACK_RECEIVED, 1.0)
    assert tx.timers["I"][0] == 1.0
    client = Transaction(Kind.CLIENT_NON_INVITE, KEY, None, TCP, CFG, request_data=b"BYE")
    client.start_client(0.0)
    assert set(client.timers) == {"F"}


def test_timer_e_goes_to_t2_in_proceeding() -> None:
    tx = Transaction(Kind.CLIENT_NON_INVITE, KEY, None, UDP, CFG, request_data=b"BYE")
    tx.start_client(0.0)
    tx.fire_timers(0.5)
    assert tx.timers["E"] == (1.5, 1.0)
    tx.apply(TxInput.RECEIVED_1XX, 0.6)
    tx.fire_timers(1.5)
    assert tx.timers["E"] == (5.5, 4.0)
