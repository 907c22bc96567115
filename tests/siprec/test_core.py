"""The SRS core with a fake clock: events in, actions out, no sockets, threads or sleeps.

A unit test of one layer: the driver is played by :class:`Driver` below, which answers the
core's I/O actions the way ``server.py`` does (a policy decision, legs with fake endpoints)
and records the rest. RFC 7866 case by case: INVITE with and without metadata, delayed
offer, re-INVITE and UPDATE with new metadata, hold, CANCEL, BYE both ways, session expiry,
RTP inactivity, capacity refusals, and the rows recovery builds from a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siprec_recorder.sip.events import Address, TransactionKey
from siprec_recorder.sip.message import SipRequest, SipResponse, parse_message
from siprec_recorder.siprec.admission import Budgets
from siprec_recorder.siprec.core import (
    AckIn,
    AckTimedOut,
    Action,
    ApplyMedia,
    AskPolicy,
    CancelIn,
    CloseLegs,
    EndRequested,
    EndSession,
    Event,
    Facts,
    MediaApplied,
    MediaFailed,
    NoteRefusal,
    PolicyAnswered,
    RequestIn,
    Respond,
    SendRequest,
    SrsCore,
    SrsSettings,
    WriteDeclined,
)
from siprec_recorder.siprec.session import Leg
from siprec_recorder.siprec.streams import StreamFate, accepted, choose_leg, refresh_leg, refused
from siprec_recorder.storage import rows
from siprec_recorder.storage.index import StreamInfo

SRC = Address("udp", "10.0.0.1", 5070)
T0 = 1_700_000_000.0
NO_FACTS = Facts()


def sdp(*ports: int, direction: str = "sendonly") -> str:
    head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    return head + "".join(
        f"m=audio {port} RTP/AVP 8\r\na=label:{i + 1}\r\na={direction}\r\n"
        for i, port in enumerate(ports)
    )


def metadata(*aors: str, datamode: str = "complete") -> str:
    parts = "".join(
        f'<participant participant_id="p{i}"><nameID aor="{aor}"/></participant>'
        for i, aor in enumerate(aors, start=1)
    )
    streams = "".join(
        f'<stream stream_id="s{i}" session_id="x"><label>{i}</label></stream>'
        f'<participantstreamassoc participant_id="p{i}"><send>s{i}</send>'
        "</participantstreamassoc>"
        for i in range(1, len(aors) + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        f'<datamode>{datamode}</datamode><session session_id="x"/>{parts}{streams}</recording>'
    )


def request(
    method: str,
    *,
    call_id: str = "c1",
    to_tag: str = "",
    cseq: int = 1,
    offer: str | None = None,
    meta: str | None = None,
    extra: str = "",
) -> SipRequest:
    if offer is not None and meta is not None:
        body = (
            f"--b\r\nContent-Type: application/sdp\r\n\r\n{offer}"
            "--b\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--b--\r\n"
        )
        ctype = "Content-Type: multipart/mixed;boundary=b\r\n"
    elif offer is not None:
        body, ctype = offer, "Content-Type: application/sdp\r\n"
    elif meta is not None:
        body = (
            "--b\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--b--\r\n"
        )
        ctype = "Content-Type: multipart/mixed;boundary=b\r\n"
    else:
        body, ctype = "", ""
    to = "<sip:srs@rec.example>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:srs@rec.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK{call_id}{method}{cseq}\r\n"
        f"Max-Forwards: 70\r\nFrom: <tel:+32470000001>;tag=a\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:src@10.0.0.1:5070>;+sip.src\r\n{extra}"
        f"{ctype}Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def tx_of(req: SipRequest) -> TransactionKey:
    return TransactionKey(req.headers.get("Via") or "", "10.0.0.1:5070", req.method)


@dataclass
class Decision:
    record: bool = True
    reason: str = "recorded"
    recorded_number: str | None = "+32470000001"
    emergency: bool = False
    beep: bool = False


@dataclass
class Endpoint:
    port: int


@dataclass
class Receiver:
    last_packet_at: float | None = None


@dataclass
class Driver:
    """Plays the driver: answers the I/O actions, records everything the core asked for."""

    core: SrsCore
    decision: Decision = field(default_factory=Decision)
    fail_media: bool = False
    next_port: int = 30000
    actions: list[Action] = field(default_factory=list)
    pause_on_policy: bool = False
    held: list[AskPolicy] = field(default_factory=list)

    def feed(self, event: Event, now: float) -> list[Action]:
        """Hand ``event`` to the core and carry out what it says; the actions it took."""
        done: list[Action] = []
        queue = list(self.core.handle(event, now))
        while queue:
            action = queue.pop(0)
            done.append(action)
            outcome = self._outcome(action)
            if outcome is not None:
                queue[:0] = self.core.handle(outcome, now)
        self.actions += done
        return done

    def _outcome(self, action: Action) -> Event | None:
        match action:
            case AskPolicy(transaction=tx):
                if self.pause_on_policy:
                    self.held.append(action)
                    return None
                return PolicyAnswered(tx, self.decision)
            case ApplyMedia(transaction=tx, session=s, plans=plans, initial=initial):
                if self.fail_media and initial:
                    return MediaFailed(tx, "no ports")
                used = {leg.label for leg in s.legs}
                answer = []
                for plan in plans:
                    st = plan.stream
                    if plan.fate is StreamFate.OPEN:
                        choice = choose_leg(st, used, self.core.settings.srtp_suites)
                        assert choice is not None and st.codec is not None
                        self.next_port += 2
                        leg = Leg(
                            index=st.index,
                            label=choice.label,
                            receiver=Receiver(),
                            endpoint=Endpoint(self.next_port),
                            port=self.next_port,
                            rtpmaps=choice.rtpmaps,
                            codec=st.codec.encoding,
                            srtp=False,
                            crypto_answer=None,
                            direction=choice.direction,
                            offered_label=st.label,
                        )
                        s.legs.append(leg)
                        answer.append(accepted(leg, st))
                    elif plan.fate is StreamFate.KEEP:
                        assert plan.leg is not None
                        refresh_leg(plan.leg, st)
                        answer.append(accepted(plan.leg, st))
                    else:
                        if plan.leg is not None:
                            plan.leg.endpoint = None
                        answer.append(refused(st))
                return MediaApplied(tx, tuple(answer))
            case CloseLegs(session=s, legs=legs):
                for leg in legs or tuple(s.legs):
                    leg.endpoint = None
        return None

    def responses(self, actions: list[Action] | None = None) -> list[SipResponse]:
        return [a.response for a in (self.actions if actions is None else actions)
                if isinstance(a, Respond)]  # fmt: skip

    def statuses(self, actions: list[Action] | None = None) -> list[int]:
        return [r.status for r in self.responses(actions)]


def new_core(**settings: object) -> tuple[SrsCore, Driver]:
    settings.setdefault("allowed_sources", ("10.0.0.0/8",))
    core = SrsCore(SrsSettings(**settings), has_policy=True)  # type: ignore[arg-type]
    return core, Driver(core)


def call(drv: Driver, req: SipRequest, now: float = T0, facts: Facts = NO_FACTS) -> list[Action]:
    return drv.feed(RequestIn(req, tx_of(req), SRC, facts), now)


def answered(
    drv: Driver,
    call_id: str = "c1",
    offer: str | None = None,
    meta: str | None = None,
    extra: str = "",
) -> str:
    """A new recorded session (INVITE, 200, ACK); its To tag."""
    inv = request(
        "INVITE", call_id=call_id, offer=offer or sdp(40000, 40002), meta=meta, extra=extra
    )
    actions = call(drv, inv)
    ok = drv.responses(actions)[-1]
    assert ok.status == 200
    tag = (ok.headers.get("To") or "").split("tag=", 1)[1]
    drv.feed(AckIn(request("ACK", call_id=call_id, to_tag=tag)), T0 + 0.1)
    return tag


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


# ---------------------------------------------------------------------- new sessions
def test_an_invite_with_metadata_is_asked_of_the_policy_answered_and_recorded() -> None:
    core, drv = new_core()
    inv = request(
        "INVITE", offer=sdp(40000, 40002), meta=metadata("tel:+32470000001", "tel:+3222000000")
    )
    actions = call(drv, inv)
    assert kinds(actions) == ["AskPolicy", "ApplyMedia", "Respond", "StartRecording"]
    ask = actions[0]
    assert isinstance(ask, AskPolicy)
    assert ask.aors == ("tel:+32470000001", "tel:+3222000000")
    ok = drv.responses(actions)[0]
    assert ok.status == 200 and ok.headers.get("Content-Type") == "application/sdp"
    assert ok.body.count(b"a=recvonly") == 2 and b"a=label:1" in ok.body
    s = core.sessions["c1"]
    assert s.started_at == T0 and s.recorded_number == "+32470000001"
    assert s.other_number == "+3222000000" and s.direction == "out"
    assert [leg.participant_id for leg in s.legs] == ["p1", "p2"]
    assert [p["send"] for p in s.participants] == [["1"], ["2"]]
    assert [e["event"] for e in s.participant_history] == ["joined", "joined"]
    assert core.admission.ports_held("10.0.0.1") == 2 and core.counters.accepted == 1


def test_an_invite_without_metadata_takes_its_parties_from_from_and_to() -> None:
    core, drv = new_core()
    answered(drv)
    s = core.sessions["c1"]
    assert [p["participant_id"] for p in s.participants] == ["caller", "callee"]
    assert s.participants[0]["number"] == "+32470000001"
    assert [leg.participant_id for leg in s.legs] == ["caller", "callee"]
    assert s.metadata is None and s.siprec_session_id is None


def test_a_declined_call_gets_403_after_its_row_and_an_emergency_call_no_row() -> None:
    core, drv = new_core()
    drv.decision = Decision(record=False, reason="not-listed")
    actions = call(drv, request("INVITE", offer=sdp(40000)))
    assert kinds(actions) == ["AskPolicy", "WriteDeclined", "Respond"]
    row = actions[1]
    assert isinstance(row, WriteDeclined) and row.row.reason == "not-listed"
    forbidden = drv.responses(actions)[0]
    assert forbidden.status == 403 and forbidden.headers.get("Warning") == '399 - "not recorded"'
    drv.decision = Decision(record=False, reason="emergency", emergency=True)
    actions = call(drv, request("INVITE", call_id="c2", offer=sdp(40000)))
    assert kinds(actions) == ["AskPolicy", "Respond"] and core.counters.emergency == 1
    assert core.sessions == {}


def test_a_delayed_offer_is_offered_in_the_200_and_bound_by_the_ack() -> None:
    core, drv = new_core()
    inv = request("INVITE", meta=metadata("tel:+32470000001", "tel:+3222000000"))
    ok = drv.responses(call(drv, inv))[-1]
    assert ok.status == 200 and ok.body.count(b"m=audio") == 2
    assert b"a=sendrecv" not in ok.body  # our offer: we receive only
    s = core.sessions["c1"]
    assert s.delayed_offer and not s.acked
    tag = s.local_tag
    # The SRC's answer in the ACK keeps the first stream and refuses the second.
    answer = sdp(41000, 0)
    ack = request("ACK", to_tag=tag, offer=answer)
    actions = drv.feed(AckIn(ack), T0 + 0.1)
    assert kinds(actions) == ["CloseLegs", "SaveManifest"]
    assert s.acked and [leg.direction for leg in s.legs] == ["recvonly", "inactive"]
    assert s.ports_held == 1 and core.admission.ports_held("10.0.0.1") == 1


def test_a_delayed_offer_without_an_answer_in_the_ack_is_ended_with_our_bye() -> None:
    core, drv = new_core()
    call(drv, request("INVITE", meta=metadata("tel:+32470000001")))
    tag = core.sessions["c1"].local_tag
    actions = drv.feed(AckIn(request("ACK", to_tag=tag)), T0 + 0.1)
    assert kinds(actions) == ["SendRequest", "EndSession"]
    end = actions[1]
    assert isinstance(end, EndSession) and end.reason == "no SDP answer in ACK"
    assert core.sessions == {}


def test_no_ack_within_64_t1_ends_the_session() -> None:
    core, drv = new_core()
    inv = request("INVITE", offer=sdp(40000))
    call(drv, inv)
    assert core.due(T0 + 31.9) == []  # the INVITE transaction still waits for it
    actions = drv.feed(AckTimedOut(tx_of(inv)), T0 + 32)
    assert kinds(actions) == ["SendRequest", "EndSession"]
    end = actions[1]
    assert isinstance(end, EndSession) and end.reason == "no ACK" and not end.grace
    assert not end.session.extend_to_end


# ---------------------------------------------------------------------- mid-call offers
def test_a_reinvite_with_new_metadata_records_who_left_and_who_joined() -> None:
    core, drv = new_core()
    tag = answered(drv, meta=metadata("tel:+32470000001", "tel:+3222000000"))
    # A transfer: the callee is replaced by a third party (a complete document).
    reinv = request(
        "INVITE",
        to_tag=tag,
        cseq=2,
        offer=sdp(40000, 40002),
        meta=metadata("tel:+32470000001", "tel:+3233000000"),
    )
    actions = call(drv, reinv, T0 + 10)
    assert kinds(actions) == ["ApplyMedia", "SaveManifest", "Respond"]
    s = core.sessions["c1"]
    assert drv.statuses(actions) == [200] and s.sdp_version == 2
    history = [(e["number"], e["event"]) for e in s.participant_history]
    assert ("+3233000000", "joined") in history and ("+3222000000", "left") in history
    left = next(p for p in s.participants if p["number"] == "+3222000000")
    assert left["left_at"] is not None
    assert len(s.legs) == 2 and core.admission.ports_held("10.0.0.1") == 2


def test_an_update_with_metadata_only_answers_200_without_sdp() -> None:
    core, drv = new_core()
    tag = answered(drv, meta=metadata("tel:+32470000001", "tel:+3222000000"))
    upd = request(
        "UPDATE", to_tag=tag, cseq=2, meta=metadata("tel:+3244000000", datamode="partial")
    )
    actions = call(drv, upd, T0 + 5)
    assert kinds(actions) == ["Respond", "SaveManifest"]
    ok = drv.responses(actions)[0]
    assert ok.status == 200 and ok.body == b""
    numbers = {p["number"] for p in core.sessions["c1"].participants}
    assert numbers == {"+32470000001", "+3222000000", "+3244000000"}


def test_hold_keeps_the_legs_and_stops_the_inactivity_timer() -> None:
    core, drv = new_core(inactivity_timeout=30.0)
    tag = answered(drv)
    hold = request("INVITE", to_tag=tag, cseq=2, offer=sdp(40000, 40002, direction="inactive"))
    assert drv.statuses(call(drv, hold, T0 + 1)) == [200]
    s = core.sessions["c1"]
    assert [leg.direction for leg in s.legs] == ["inactive", "inactive"]
    assert all(leg.endpoint is not None for leg in s.legs)
    assert s.all_on_hold() and core.due(T0 + 600) == []
    resume = request("INVITE", to_tag=tag, cseq=3, offer=sdp(40000, 40002))
    call(drv, resume, T0 + 700)
    assert core.due(T0 + 700) == [("c1", "rtp timeout")]


def test_a_reinvite_of_an_unknown_dialog_gets_481_and_a_stream_removed_closes_its_leg() -> None:
    core, drv = new_core()
    tag = answered(drv)
    stray = request("INVITE", to_tag="other", cseq=2, offer=sdp(40000))
    assert drv.statuses(call(drv, stray)) == [481]
    shrink = request("UPDATE", to_tag=tag, cseq=3, offer=sdp(40000, 0))
    ok = drv.responses(call(drv, shrink))[0]
    assert ok.status == 200 and b"m=audio 0 " in ok.body
    s = core.sessions["c1"]
    assert s.legs[1].endpoint is None and s.ports_held == 1


# ---------------------------------------------------------------------- CANCEL and BYE
def test_a_cancel_while_the_policy_decides_gets_487_and_a_row() -> None:
    core, drv = new_core()
    drv.pause_on_policy = True
    inv = request("INVITE", offer=sdp(40000))
    call(drv, inv)
    drv.feed(CancelIn(tx_of(inv), inv), T0 + 0.1)
    drv.pause_on_policy = False
    actions = drv.feed(PolicyAnswered(tx_of(inv), Decision()), T0 + 0.2)
    assert kinds(actions) == ["ApplyMedia", "CloseLegs", "Respond", "NoteRefusal"]
    assert drv.statuses(actions) == [487]
    note = actions[-1]
    assert isinstance(note, NoteRefusal) and note.reason == "cancelled"
    assert core.sessions == {} and core.admission.ports_held("10.0.0.1") == 0
    assert core.cancelled == {}


def test_a_cancel_after_the_answer_changes_nothing() -> None:
    core, drv = new_core()
    inv = request("INVITE", offer=sdp(40000))
    call(drv, inv)
    assert drv.feed(CancelIn(tx_of(inv), inv), T0 + 1) == []
    assert list(core.sessions) == ["c1"] and core.cancelled == {}


def test_the_srcs_bye_is_answered_and_ends_the_session_after_a_grace() -> None:
    core, drv = new_core()
    tag = answered(drv)
    actions = call(drv, request("BYE", to_tag=tag, cseq=2), T0 + 20)
    assert kinds(actions) == ["Respond", "EndSession"]
    end = actions[1]
    assert isinstance(end, EndSession)
    assert end.grace and end.reason is None and end.ended_at == T0 + 20
    assert end.session.extend_to_end
    assert core.sessions == {} and core.admission.ports_held("10.0.0.1") == 0
    assert core.per_source == {}
    again = call(drv, request("BYE", to_tag=tag, cseq=3), T0 + 21)
    assert drv.statuses(again) == [481]


def test_our_bye_goes_through_the_dialog_with_the_next_cseq() -> None:
    core, drv = new_core()
    answered(drv, extra="Record-Route: <sip:10.0.0.9:5060;lr>\r\n")
    actions = drv.feed(EndRequested("c1", "recorder shutdown"), T0 + 5)
    assert kinds(actions) == ["SendRequest", "EndSession"]
    bye = actions[0]
    assert isinstance(bye, SendRequest)
    assert bye.request.method == "BYE" and bye.request.call_id == "c1"
    assert bye.request.headers.get("Route") == "<sip:10.0.0.9:5060;lr>"
    assert (bye.destination.host, bye.destination.port) == ("10.0.0.9", 5060)
    assert "tag=a" in (bye.request.headers.get("To") or "")


# ---------------------------------------------------------------------- timers
def test_session_expiry_ends_a_session_not_refreshed_in_time() -> None:
    core, drv = new_core(inactivity_timeout=600.0)
    tag = answered(drv, extra="Session-Expires: 120;refresher=uac\r\n")
    ok = next(r for r in drv.responses() if r.status == 200)
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    for leg in core.sessions["c1"].legs:
        leg.receiver.last_packet_at = T0 + 100
    refresh = request("UPDATE", to_tag=tag, cseq=2, extra="Session-Expires: 120\r\n")
    assert drv.statuses(call(drv, refresh, T0 + 100)) == [200]
    assert core.due(T0 + 200) == []
    for leg in core.sessions["c1"].legs:
        leg.receiver.last_packet_at = T0 + 221
    assert core.due(T0 + 221) == [("c1", "session expired")]
    actions = drv.feed(EndRequested("c1", "session expired"), T0 + 221)
    end = actions[-1]
    assert isinstance(end, EndSession) and not end.session.extend_to_end


def test_rtp_inactivity_ends_a_session_after_the_timeout() -> None:
    core, drv = new_core(inactivity_timeout=30.0)
    answered(drv)
    legs = core.sessions["c1"].legs
    legs[0].receiver.last_packet_at = T0 + 10
    assert core.due(T0 + 39) == []
    assert core.due(T0 + 40.5) == [("c1", "rtp timeout")]


def test_a_session_expires_below_min_se_gets_422() -> None:
    core, drv = new_core()
    inv = request("INVITE", offer=sdp(40000), extra="Session-Expires: 30\r\n")
    resp = drv.responses(call(drv, inv))[0]
    assert resp.status == 422 and resp.headers.get("Min-SE") == "90"


# ---------------------------------------------------------------------- admission
def test_capacity_refusals_name_their_budget_and_leave_a_refusal_note() -> None:
    core, drv = new_core(max_sessions=1)
    answered(drv)
    actions = call(drv, request("INVITE", call_id="c2", offer=sdp(40000)))
    assert kinds(actions) == ["Respond", "NoteRefusal"]
    busy = drv.responses(actions)[0]
    assert busy.status == 503 and busy.headers.get("Warning") == '399 - "budget: sessions"'
    assert busy.headers.get("Retry-After") == "10"
    assert core.admission.refused == {"sessions": 1}


def test_low_disk_is_a_fact_the_driver_passes_in() -> None:
    core, drv = new_core(min_free_mb=100)
    inv = request("INVITE", offer=sdp(40000))
    full = drv.responses(call(drv, inv, facts=Facts(free_mb=50.0)))[0]
    assert full.status == 503 and full.headers.get("Retry-After") == "60"
    assert core.counters.declined == {"disk-full": 1}
    assert core.cannot_take_calls(Facts(free_mb=50.0)) == "recorder storage full"
    assert core.cannot_take_calls(Facts(free_mb=500.0, ports_available=1)) == "no RTP ports free"
    inv2 = request("INVITE", call_id="c2", offer=sdp(40000))
    assert drv.statuses(call(drv, inv2, facts=Facts(free_mb=500.0)))[-1] == 200


def test_port_budgets_refuse_an_invite_and_a_growing_reinvite() -> None:
    core, drv = new_core(budgets=Budgets(max_ports_per_source=3, max_media_lines=4))
    tag = answered(drv)
    big = request("INVITE", call_id="c2", offer=sdp(*range(41000, 41010, 2)))
    refused_ = drv.responses(call(drv, big))[0]
    assert refused_.status == 488
    assert refused_.headers.get("Warning") == '399 - "budget: media-lines-per-invite"'
    never = request("INVITE", to_tag=tag, cseq=2, offer=sdp(40000, 40002, 40004, 40006))
    assert drv.statuses(call(drv, never)) == [488]  # more than the source may ever hold
    answered(drv, call_id="c3", offer=sdp(42000))  # the source now holds all three
    grow = request("INVITE", to_tag=tag, cseq=3, offer=sdp(40000, 40002, 40004))
    busy = drv.responses(call(drv, grow))[0]
    assert busy.status == 503 and busy.headers.get("Retry-After") == "10"
    assert len(core.sessions["c1"].legs) == 2  # nothing changed


def test_a_media_failure_answers_503_and_closes_what_was_opened() -> None:
    core, drv = new_core()
    drv.fail_media = True
    actions = call(drv, request("INVITE", offer=sdp(40000)))
    assert kinds(actions)[-2:] == ["CloseLegs", "Respond"]
    assert drv.statuses(actions) == [503] and core.admission.refused == {"rtp-ports": 1}
    assert core.sessions == {}


def test_a_source_not_allowed_and_a_plain_invite_get_403() -> None:
    core, drv = new_core(allowed_sources=("192.0.2.0/24",))
    assert drv.statuses(call(drv, request("INVITE", offer=sdp(40000)))) == [403]
    core, drv = new_core()
    text = request("INVITE", offer=sdp(40000)).serialize().replace(b";+sip.src", b"")
    plain = parse_message(text)
    assert isinstance(plain, SipRequest)
    assert drv.statuses(call(drv, plain)) == [403]
    assert core.counters.declined == {"not-siprec": 1}


def test_a_refusal_row_is_bounded_per_source_and_budget() -> None:
    core, _drv = new_core()
    inv = request("INVITE", offer=sdp(40000))
    note = NoteRefusal(inv, SRC, "source-at-capacity", T0, budget="sessions-per-source")
    written = 0
    for _ in range(core.REFUSAL_ROWS_BURST + 5):
        first = core.refusal_needs_policy(note)
        if first is None:
            continue
        ask, parties = first
        assert ask  # a budget refusal asks the policy whether it governs the call
        if core.refusal_row(note, parties, Decision()) is not None:
            written += 1
    assert written == core.REFUSAL_ROWS_BURST
    assert core.counters.refusals_not_indexed == {("sessions-per-source", "row-limit"): 5}
    ungoverned = NoteRefusal(inv, SRC, "storage-low", T0, budget="storage")
    row = core.refusal_row(ungoverned, [], Decision(record=False))
    assert row is None
    assert core.counters.refusals_not_indexed[("storage", "not-governed")] == 1


# ---------------------------------------------------------------------- recovery
def test_recovery_rows_come_from_the_manifest_the_session_wrote() -> None:
    core, drv = new_core()
    answered(drv, meta=metadata("tel:+32470000001", "tel:+3222000000"))
    s = core.sessions["c1"]
    manifest = s.manifest(channels="mono", bitrate_kbps=32, retention_years=5)
    new = rows.new_recording(manifest, node_id="n1")
    assert (new.id, new.call_id, new.node_id) == (s.rec_id, "c1", "n1")
    assert new.recorded_number == "+32470000001" and new.direction == "out"
    assert new.start.timestamp() == T0 and new.source == "udp:10.0.0.1:5070"
    result = {
        "end": "2023-11-14T22:14:00Z",
        "state": "interrupted",
        "reason": "recorder stopped during the call",
        "duration_s": 5.0,
        "streams": [{"label": "1", "first_packet_at": 0.5, "packets_received": 10}],
    }
    done = rows.finished_recording(manifest, result)
    assert done.state == "interrupted" and done.duration_s == 5.0
    first = done.streams[0]
    assert isinstance(first, StreamInfo) and first.first_packet_at is not None
    assert first.first_packet_at.timestamp() == T0 + 0.5
    assert done.participants is not None and len(done.participants) == 2


def test_other_requests_options_info_and_unknown_methods() -> None:
    core, drv = new_core()
    tag = answered(drv)
    assert drv.statuses(call(drv, request("INFO", to_tag=tag, cseq=5))) == [200]
    assert drv.statuses(call(drv, request("OPTIONS", call_id="o1"))) == [200]
    assert drv.statuses(call(drv, request("MESSAGE", call_id="m1"))) == [405]
    assert drv.statuses(call(drv, request("FOO", call_id="f1"))) == [501]
    core.closing = True
    busy = drv.responses(call(drv, request("OPTIONS", call_id="o2")))[0]
    assert busy.status == 503 and "shutting down" in (busy.headers.get("Warning") or "")
