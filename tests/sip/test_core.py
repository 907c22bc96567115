"""SipCore end to end with a fake clock: INVITE/2xx/ACK, CANCEL, BYE out, rejections."""

from __future__ import annotations

import pytest

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.sip import (
    AckReceived,
    Address,
    InviteCancelled,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipCore,
    SipRequest,
    SipResponse,
    TimerConfig,
    TransactionTimedOut,
    make_response,
    parse_message,
)
from siprec_recorder.sip.errors import MessageTooLarge, SipParseError
from siprec_recorder.sip.events import Event
from siprec_recorder.sip.headers import Headers

SRC = Address("udp", "10.0.0.1", 5062)
TCP_SRC = Address("tcp", "10.0.0.1", 40000, 3)


def invite(
    branch: str = "z9hG4bKinv1", method: str = "INVITE", to_tag: str = "", via_port: int = 5062
) -> bytes:
    to = "<sip:srs@rec.example>" + (f";tag={to_tag}" if to_tag else "")
    cseq_method = method
    return (
        f"{method} sip:srs@rec.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:{via_port};branch={branch};rport\r\n"
        "From: <sip:src@sbc.example>;tag=f1\r\n"
        f"To: {to}\r\n"
        "Call-ID: call-1@sbc\r\n"
        f"CSeq: 1 {cseq_method}\r\n"
        "Contact: <sip:src@10.0.0.1:5062>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def drain(core: SipCore) -> list[Event]:
    out = []
    while (e := core.next_event()) is not None:
        out.append(e)
    return out


def statuses(core: SipCore) -> list[int]:
    out = []
    for data, _ in core.datagrams_to_send():
        m = parse_message(data)
        assert isinstance(m, SipResponse)
        out.append(m.status)
    return out


def run_timers(core: SipCore, until: float) -> list[tuple[float, bytes]]:
    sent: list[tuple[float, bytes]] = []
    while (t := core.get_timer()) is not None and t <= until:
        core.handle_timer(t)
        sent += [(t, d) for d, _ in core.datagrams_to_send()]
    return sent


def test_invite_200_ack() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    assert statuses(core) == [100]
    # retransmitted INVITE: absorbed, 100 re-sent
    core.receive(invite(), SRC, 0.2)
    assert drain(core) == [] and statuses(core) == [100]
    core.respond(event.transaction, make_response(event.request, 200, to_tag="t1"), 0.3)
    sent = core.datagrams_to_send()
    assert len(sent) == 1 and sent[0][1] == SRC  # rport: back to the source port
    ok = parse_message(sent[0][0])
    assert isinstance(ok, SipResponse) and ok.to_tag == "t1"
    assert ok.headers.get("Server") == "siprec-recorder"
    assert ok.via.rport == "5062"
    # 2xx retransmitted at T1, 2T1 ...
    assert [t for t, _ in run_timers(core, 2.0)] == [0.8, 1.8]
    ack = invite("z9hG4bKack1", "ACK", to_tag="t1")
    core.receive(ack, SRC, 2.0)
    events = drain(core)
    assert len(events) == 1 and isinstance(events[0], AckReceived)
    core.receive(ack, SRC, 2.1)  # duplicate ACK absorbed
    assert drain(core) == []
    assert run_timers(core, 100.0) == []
    assert core.transaction_count == 0 and core.get_timer() is None


def test_2xx_without_ack_times_out() -> None:
    core = SipCore(TimerConfig(t1=0.5, t2=4.0, t4=5.0))
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.datagrams_to_send()
    core.respond(event.transaction, make_response(event.request, 200, to_tag="t1"), 0.0)
    core.datagrams_to_send()
    times = [t for t, _ in run_timers(core, 100.0)]
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert max(times) <= 32.0
    assert drain(core) == [TransactionTimedOut(event.transaction)]
    assert core.transaction_count == 0


def test_failure_response_timer_g_and_ack() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.datagrams_to_send()
    core.respond(event.transaction, make_response(event.request, 486, to_tag="t2"), 0.0)
    assert statuses(core) == [486]
    assert len(run_timers(core, 1.0)) == 1  # Timer G at 0.5
    ack = invite("z9hG4bKinv1", "ACK", to_tag="t2")  # non-2xx ACK: same branch
    core.receive(ack, SRC, 1.2)
    assert drain(core) == []  # absorbed by the transaction
    assert run_timers(core, 100.0) == []
    assert core.transaction_count == 0


def test_failure_without_ack_times_out_timer_h() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.respond(event.transaction, make_response(event.request, 603), 0.0)
    run_timers(core, 100.0)
    assert drain(core) == [TransactionTimedOut(event.transaction)]


def test_cancel() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.datagrams_to_send()
    cancel = invite(method="CANCEL")
    core.receive(cancel, SRC, 0.5)
    [cancelled] = drain(core)
    assert isinstance(cancelled, InviteCancelled) and cancelled.transaction == event.transaction
    assert statuses(core) == [200]
    core.receive(cancel, SRC, 0.6)  # CANCEL retransmission: 200 again, no event
    assert drain(core) == [] and statuses(core) == [200]
    core.respond(event.transaction, make_response(event.request, 487, to_tag="t3"), 0.7)
    assert statuses(core) == [487]


def test_cancel_without_match_gets_481() -> None:
    core = SipCore()
    core.receive(invite("z9hG4bKother", method="CANCEL"), SRC, 0.0)
    assert drain(core) == [] and statuses(core) == [481]


def test_cancel_after_final_is_200_without_event() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.respond(event.transaction, make_response(event.request, 200, to_tag="t"), 0.1)
    core.datagrams_to_send()
    core.receive(invite(method="CANCEL"), SRC, 0.2)
    assert drain(core) == [] and statuses(core) == [200]


def test_non_invite_server_and_timer_j() -> None:
    core = SipCore()
    bye = invite("z9hG4bKbye", "BYE", to_tag="t1")
    core.receive(bye, SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived) and event.request.method == "BYE"
    assert core.datagrams_to_send() == []  # no automatic 100 for non-INVITE
    core.respond(event.transaction, make_response(event.request, 200), 0.1)
    assert statuses(core) == [200]
    core.receive(bye, SRC, 1.0)
    assert drain(core) == [] and statuses(core) == [200]
    with pytest.raises(LocalProtocolError):
        core.respond(event.transaction, make_response(event.request, 200), 1.1)
    run_timers(core, 100.0)
    assert core.transaction_count == 0
    with pytest.raises(LocalProtocolError):
        core.respond(event.transaction, make_response(event.request, 200), 101.0)


def outgoing_bye(branch: str = "z9hG4bKout1") -> SipRequest:
    headers = Headers.of(
        [
            ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;branch={branch}"),
            ("From", "<sip:srs@rec.example>;tag=t1"),
            ("To", "<sip:src@sbc.example>;tag=f1"),
            ("Call-ID", "call-1@sbc"),
            ("CSeq", "5 BYE"),
            ("Max-Forwards", "70"),
        ]
    )
    return SipRequest("BYE", "sip:src@10.0.0.1:5062", headers)


def response_to(request: SipRequest, status: int) -> bytes:
    return make_response(request, status, to_tag="f1").serialize()


def test_client_bye_retransmits_then_gets_response() -> None:
    core = SipCore()
    bye = outgoing_bye()
    key = core.send_request(bye, SRC, 0.0)
    assert len(core.datagrams_to_send()) == 1
    assert [t for t, _ in run_timers(core, 1.6)] == [0.5, 1.5]
    core.receive(response_to(bye, 200), SRC, 1.7)
    [event] = drain(core)
    assert isinstance(event, ResponseReceived) and event.transaction == key
    assert event.response.status == 200
    core.receive(response_to(bye, 200), SRC, 1.8)  # retransmitted response absorbed
    assert drain(core) == []
    run_timers(core, 100.0)
    assert core.transaction_count == 0


def test_client_bye_timer_f() -> None:
    core = SipCore()
    key = core.send_request(outgoing_bye(), SRC, 0.0)
    sent = run_timers(core, 100.0)
    assert 5 <= len(sent) <= 12
    assert drain(core) == [TransactionTimedOut(key)]


def test_send_request_misuse() -> None:
    core = SipCore()
    bad = outgoing_bye("nocookie")
    with pytest.raises(LocalProtocolError):
        core.send_request(bad, SRC, 0.0)
    with pytest.raises(LocalProtocolError):
        core.send_request(SipRequest("INVITE", "sip:x@y", outgoing_bye().headers), SRC, 0.0)


def test_stray_response_dropped() -> None:
    core = SipCore()
    core.receive(response_to(outgoing_bye("z9hG4bKnobody"), 200), SRC, 0.0)
    assert drain(core) == [] and core.datagrams_to_send() == []


def test_tcp_answers_on_same_connection_without_retransmitting_failures() -> None:
    core = SipCore()
    core.receive(invite(), TCP_SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.datagrams_to_send()
    core.respond(event.transaction, make_response(event.request, 486), 0.0)
    [(_, dest)] = core.datagrams_to_send()
    assert dest == TCP_SRC
    assert run_timers(core, 31.0) == []


def test_via_received_stamped_and_response_to_via_port() -> None:
    core = SipCore()
    data = invite().replace(b";rport", b"").replace(b"10.0.0.1:5062", b"sbc.example:5070", 1)
    core.receive(data, SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    assert event.request.via.received == "10.0.0.1"
    [(_, dest)] = core.datagrams_to_send()
    assert (dest.host, dest.port) == ("10.0.0.1", 5070)


def test_rfc2543_retransmission_absorbed() -> None:
    core = SipCore()
    data = invite().replace(b";branch=z9hG4bKinv1", b"")
    core.receive(data, SRC, 0.0)
    core.receive(data, SRC, 0.5)
    assert len(drain(core)) == 1


def test_oversized_gets_513() -> None:
    core = SipCore(max_message_size=300)
    data = invite().replace(
        b"Content-Length: 0\r\n\r\n", b"Content-Length: 400\r\n\r\n" + b"x" * 400
    )
    core.receive(data, SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, MessageRejected) and event.status == 513
    assert statuses(core) == [513]


def test_bad_request_400_names_problem() -> None:
    core = SipCore()
    data = invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    core.receive(data, SRC, 0.0)
    [event] = drain(core)
    assert event == MessageRejected(SRC, "CSeq method does not match the Request-Line", 400)
    [(raw, _)] = core.datagrams_to_send()
    assert raw.startswith(b"SIP/2.0 400 CSeq method does not match the Request-Line\r\n")


def test_keepalive_ignored() -> None:
    core = SipCore()
    core.receive(b"\r\n\r\n", SRC, 0.0)
    assert drain(core) == [] and core.datagrams_to_send() == []


def test_reject_stream_head() -> None:
    core = SipCore()
    head = invite().split(b"\r\n\r\n")[0]
    core.reject_stream_head(head, TCP_SRC, MessageTooLarge("message exceeds the size limit"))
    [event] = drain(core)
    assert isinstance(event, MessageRejected) and event.status == 513
    [(raw, dest)] = core.datagrams_to_send()
    assert raw.startswith(b"SIP/2.0 513 Message Too Large") and dest == TCP_SRC
    core.reject_stream_head(head, TCP_SRC, SipParseError("invalid Content-Length"))
    assert drain(core) == [MessageRejected(TCP_SRC, "invalid Content-Length", 400)]
    [(raw, _)] = core.datagrams_to_send()
    assert raw.startswith(b"SIP/2.0 400 invalid Content-Length\r\n")


def test_retransmission_flood_keeps_timer_queue_small() -> None:
    core = SipCore()
    core.receive(invite(), SRC, 0.0)
    [event] = drain(core)
    assert isinstance(event, RequestReceived)
    core.respond(event.transaction, make_response(event.request, 486), 0.0)
    for i in range(1000):
        core.receive(invite(), SRC, 0.0001 * i)
    assert len(core._heap) <= 3
    assert len(core.datagrams_to_send()) == 2 + 1000  # 100, 486, 1000 re-sent 486s
    assert drain(core) == []


def test_unanswered_request_is_dropped_by_the_guard() -> None:
    core = SipCore(TimerConfig(tu_guard=60.0))
    core.receive(invite(), SRC, 0.0)
    core.receive(invite("z9hG4bKopt", "OPTIONS"), SRC, 0.0)
    keys = [e.transaction for e in drain(core) if isinstance(e, RequestReceived)]
    core.datagrams_to_send()
    assert core.get_timer() == 60.0
    run_timers(core, 61.0)
    assert drain(core) == [TransactionTimedOut(k) for k in keys]
    assert core.transaction_count == 0 and core.datagrams_to_send() == []
