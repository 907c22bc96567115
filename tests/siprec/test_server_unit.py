"""The SRS on its own: SIP events in, responses and index calls out.

A unit test of one layer: the SIP service, index, policy, spool and port pool are small
fakes that record what the SRS asks of them (the real ones are exercised end to end in
tests/integration). Used where timing cannot be arranged over sockets, e.g. a CANCEL that
arrives while the policy decision is still pending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.sip.events import Address, InviteCancelled, RequestReceived, TransactionKey
from siprec_recorder.sip.message import SipRequest, SipResponse, parse_message
from siprec_recorder.siprec.server import SessionRecordingServer, SrsSettings

SRC = Address("udp", "127.0.0.1", 5070)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n"
)


def invite(call_id: str = "c1") -> SipRequest:
    text = (
        "INVITE sip:srs@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv1\r\n"
        "Max-Forwards: 70\r\nFrom: <tel:+32470000001>;tag=a\r\nTo: <sip:srs@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:src@127.0.0.1:5070>;+sip.src\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


@dataclass
class FakeSip:
    responses: list[SipResponse] = field(default_factory=list)

    def respond(self, tx: Any, response: SipResponse) -> None:
        self.responses.append(response)

    def send_request(self, request: SipRequest, dest: Any) -> None:
        pass


@dataclass
class FakeIndex:
    declined: list[Any] = field(default_factory=list)
    created: list[Any] = field(default_factory=list)

    async def record_declined(self, row: Any) -> str:
        self.declined.append(row)
        return "x"

    async def create_recording(self, row: Any) -> str:
        self.created.append(row)
        return "x"


@dataclass
class Decision:
    record: bool = True
    reason: str = "recorded"
    recorded_number: str | None = "+32470000001"
    emergency: bool = False
    beep: bool = False


class SlowPolicy:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def decide(self, aors: list[str], now: Any) -> Decision:
        self.asked.set()
        await self.release.wait()
        return Decision()


@dataclass
class FakeEndpoint:
    port: int


class FakePorts:
    def __init__(self) -> None:
        self.open_count = 0
        self.released: list[int] = []

    async def open(self, receiver: Any, *, rtcp_mux: bool = False) -> FakeEndpoint:
        self.open_count += 1
        return FakeEndpoint(20000 + 2 * self.open_count)

    def release(self, ep: FakeEndpoint) -> None:
        self.released.append(ep.port)

    def read_all(self) -> None:
        pass


class FakeSpool:
    root = "/nonexistent"

    def open_session(self, rec_id: str, manifest: dict[str, Any]) -> Any:
        raise AssertionError("a cancelled call must not create a spool")


async def test_cancel_while_the_policy_decides_gets_487_and_a_row() -> None:
    sip, index, policy, ports = FakeSip(), FakeIndex(), SlowPolicy(), FakePorts()
    srs = SessionRecordingServer(
        sip=sip,
        index=index,
        policy=policy,
        spool=FakeSpool(),
        recordings_root="/tmp",
        ports=ports,
        executor=None,
        settings=SrsSettings(),
        receiver_factory=LegReceiver,
    )
    tx = TransactionKey("z9hG4bKinv1", "127.0.0.1:5070", "INVITE")
    req = invite()
    srs.on_event(RequestReceived(req, tx, SRC))
    await asyncio.wait_for(policy.asked.wait(), 2)
    srs.on_event(InviteCancelled(tx, req))  # the core already answered the CANCEL 200
    policy.release.set()
    await srs.drain()
    assert [r.status for r in sip.responses] == [487]
    assert "tag=" in (sip.responses[0].headers.get("To") or "")
    assert srs.sessions == {}
    assert ports.released == [20002]
    assert [d.reason for d in index.declined] == ["cancelled"]
    assert index.created == []


async def test_cancel_after_the_answer_changes_nothing() -> None:
    sip, index, policy, ports = FakeSip(), FakeIndex(), SlowPolicy(), FakePorts()

    class Spool(FakeSpool):
        def open_session(self, rec_id: str, manifest: dict[str, Any]) -> Any:
            return object()

    srs = SessionRecordingServer(
        sip=sip,
        index=index,
        policy=policy,
        spool=Spool(),
        recordings_root="/tmp",
        ports=ports,
        executor=None,
        settings=SrsSettings(),
        receiver_factory=LegReceiver,
    )
    policy.release.set()
    tx = TransactionKey("z9hG4bKinv1", "127.0.0.1:5070", "INVITE")
    srs.on_event(RequestReceived(invite(), tx, SRC))
    await srs.drain()
    srs.on_event(InviteCancelled(tx, invite()))
    await srs.drain()
    assert [r.status for r in sip.responses] == [200]
    assert list(srs.sessions) == ["c1"]
    assert srs._cancelled == {}


class FlakyIndex(FakeIndex):
    """Fails the first ``failures`` finish writes the way a locked database does."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.error = error or OSError("database is locked")
        self.finished: list[tuple[str, Any]] = []
        self.attempts = 0

    async def finish_recording(self, rec_id: str, row: Any) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.finished.append((rec_id, row))


def _srs_with(index: FakeIndex) -> SessionRecordingServer:
    srs = SessionRecordingServer(
        sip=FakeSip(),
        index=index,
        policy=SlowPolicy(),
        spool=FakeSpool(),
        recordings_root="/tmp",
        ports=FakePorts(),
        executor=None,
        settings=SrsSettings(),
        receiver_factory=LegReceiver,
    )
    srs.INDEX_RETRY_DELAYS = (0.01, 0.01, 0.01)
    return srs


@dataclass
class _Session:
    rec_id: str = "r1"
    call_id: str = "c1"
    index_pending: bool = False
    source: Any = None


async def test_a_finished_row_is_retried_while_the_index_is_locked() -> None:
    index = FlakyIndex(failures=2)
    srs = _srs_with(index)
    await srs._index_finished(_Session(), "row")  # type: ignore[arg-type]
    assert index.attempts == 3 and index.finished == [("r1", "row")]


async def test_retries_end_and_the_error_surfaces() -> None:
    index = FlakyIndex(failures=10)
    srs = _srs_with(index)
    # The last failure surfaces: _finish then keeps the spool for recovery.
    with pytest.raises(OSError, match="locked"):
        await srs._index_finished(_Session(), "row")  # type: ignore[arg-type]
    assert index.attempts == 4 and index.finished == []


async def test_a_refused_row_is_not_retried_and_stop_cuts_a_wait_short() -> None:
    from siprec_recorder.errors import LocalProtocolError

    index = FlakyIndex(failures=1, error=LocalProtocolError("recording r1 is already complete"))
    srs = _srs_with(index)
    with pytest.raises(LocalProtocolError, match="already complete"):
        await srs._index_finished(_Session(), "row")  # type: ignore[arg-type]
    assert index.attempts == 1

    slow = FlakyIndex(failures=10)
    srs = _srs_with(slow)
    srs.INDEX_RETRY_DELAYS = (60.0,)
    task = asyncio.create_task(srs._index_finished(_Session(), "row"))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    await asyncio.wait_for(srs.stop(), 2)
    with pytest.raises(OSError):
        await asyncio.wait_for(task, 2)
    assert slow.attempts == 1


# ---------------------------------------------------------------------- budgets on re-INVITE
def _sdp(ports: list[int]) -> str:
    """An offer with one m-line per port (labels 1, 2...; port 0 removes a stream)."""
    head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    return head + "".join(
        f"m=audio {port} RTP/AVP 8\r\na=label:{i + 1}\r\na=sendonly\r\n"
        for i, port in enumerate(ports)
    )


def _request(
    method: str, call_id: str, sdp: str | None, *, to_tag: str = "", cseq: int = 1
) -> SipRequest:
    body = sdp or ""
    to = f"<sip:srs@127.0.0.1>;tag={to_tag}" if to_tag else "<sip:srs@127.0.0.1>"
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    text = (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{call_id}{cseq}\r\n"
        f"Max-Forwards: 70\r\nFrom: <tel:+32470000001>;tag=a\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:src@127.0.0.1:5070>;+sip.src\r\n"
        f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


class LiveSpool:
    root = "/nonexistent"

    class Session:
        def update_manifest(self, manifest: dict[str, Any]) -> None:
            pass

    def open_session(self, rec_id: str, manifest: dict[str, Any]) -> Any:
        return self.Session()


class LiveIndex(FakeIndex):
    async def update_participants(self, rec_id: str, participants: Any) -> None:
        pass


class Policy:
    """Records every call; ``evaluate`` (what a refusal asks) says ``governed``."""

    def __init__(self, governed: bool = True) -> None:
        self.governed = governed
        self.evaluated = 0

    async def decide(self, aors: list[str], now: Any) -> Decision:
        return Decision()

    async def evaluate(self, aors: list[str], now: Any) -> Decision:
        self.evaluated += 1
        return Decision(record=self.governed)


def _budget_srs(
    budgets: Any, index: FakeIndex | None = None, policy: Any = None, **settings: Any
) -> tuple[SessionRecordingServer, FakeSip, FakePorts]:
    sip, ports = FakeSip(), FakePorts()
    srs = SessionRecordingServer(
        sip=sip,
        index=index or LiveIndex(),
        policy=policy or Policy(),
        spool=LiveSpool(),
        recordings_root="/tmp",
        ports=ports,
        executor=None,
        settings=SrsSettings(budgets=budgets, **settings),
        receiver_factory=LegReceiver,
    )
    return srs, sip, ports


async def _send(srs: SessionRecordingServer, sip: FakeSip, req: SipRequest) -> SipResponse:
    tx = TransactionKey(req.headers.get("Via") or "", "127.0.0.1:5070", req.method)
    before = len(sip.responses)
    srs.on_event(RequestReceived(req, tx, SRC))
    await srs.drain()
    assert len(sip.responses) == before + 1, [r.status for r in sip.responses]
    return sip.responses[-1]


def _to_tag(resp: SipResponse) -> str:
    return (resp.headers.get("To") or "").split("tag=", 1)[1]


async def test_a_reinvite_adding_streams_past_the_budget_is_refused_and_changes_nothing() -> None:
    from siprec_recorder.siprec.admission import Budgets

    srs, sip, ports = _budget_srs(Budgets(max_ports_per_source=4))
    a = await _send(srs, sip, _request("INVITE", "a", _sdp([40000, 40002])))
    b = await _send(srs, sip, _request("INVITE", "b", _sdp([41000, 41002])))
    assert (a.status, b.status) == (200, 200)
    assert srs.admission.ports_held("127.0.0.1") == 4
    session = srs.sessions["b"]
    legs_before = [(leg.label, leg.port, leg.endpoint) for leg in session.legs]
    answer_before, version_before = session.last_answer, session.sdp_version

    # b asks for two more streams: the source's other session holds the ports: 503.
    grow = _request("INVITE", "b", _sdp([41000, 41002, 41004, 41006]), to_tag=_to_tag(b), cseq=2)
    refused = await _send(srs, sip, grow)
    assert refused.status == 503
    assert refused.headers.get("Warning") == '399 - "budget: rtp-ports-per-source"'
    assert refused.headers.get("Retry-After") == "10"
    assert [(leg.label, leg.port, leg.endpoint) for leg in session.legs] == legs_before
    assert session.last_answer is answer_before and session.sdp_version == version_before
    assert ports.open_count == 4 and ports.released == []
    assert srs.admission.ports_held("127.0.0.1") == 4
    assert srs.admission.refused == {"rtp-ports-per-source": 1}
    assert list(srs.sessions) == ["a", "b"]  # both still recording

    # Six lines in one session could never fit a budget of four: 488 (nothing to wait for).
    huge = _request("INVITE", "b", _sdp([41000 + 2 * i for i in range(6)]), to_tag=_to_tag(b))
    never = await _send(srs, sip, huge)
    assert never.status == 488 and never.headers.get("Retry-After") is None
    assert never.headers.get("Warning") == '399 - "budget: rtp-ports-per-source"'

    # An UPDATE is checked the same way.
    update = _request("UPDATE", "b", _sdp([41000, 41002, 41004]), to_tag=_to_tag(b), cseq=4)
    assert (await _send(srs, sip, update)).status == 503


async def test_streams_removed_by_a_reinvite_return_their_ports_to_the_budget() -> None:
    from siprec_recorder.siprec.admission import Budgets

    srs, sip, ports = _budget_srs(Budgets(max_ports_per_source=4))
    a = await _send(srs, sip, _request("INVITE", "a", _sdp([40000, 40002])))
    b = await _send(srs, sip, _request("INVITE", "b", _sdp([41000, 41002])))
    assert srs.admission.ports_held("127.0.0.1") == 4
    # a stops stream 2 (port 0): one pair back in the budget.
    shrink = _request("INVITE", "a", _sdp([40000, 0]), to_tag=_to_tag(a), cseq=2)
    assert (await _send(srs, sip, shrink)).status == 200
    assert srs.admission.ports_held("127.0.0.1") == 3 and len(ports.released) == 1
    # Now b may add one stream, and only one.
    grow = _request("INVITE", "b", _sdp([41000, 41002, 41004]), to_tag=_to_tag(b), cseq=2)
    ok = await _send(srs, sip, grow)
    assert ok.status == 200 and b"m=audio 0 " not in ok.body
    assert srs.admission.ports_held("127.0.0.1") == 4
    assert srs.sessions["b"].ports_held == 3
    more = _request("INVITE", "b", _sdp([41000, 41002, 41004, 41006]), to_tag=_to_tag(b), cseq=3)
    assert (await _send(srs, sip, more)).status == 503
    # Swapping a stream (one removed, one added in the same offer) needs no new port.
    swap = _request("INVITE", "b", _sdp([41000, 41002, 0, 41006]), to_tag=_to_tag(b), cseq=4)
    assert (await _send(srs, sip, swap)).status == 200
    assert srs.admission.ports_held("127.0.0.1") == 4


# ---------------------------------------------------------------------- refusal rows
async def _flood(srs: SessionRecordingServer, sip: FakeSip, n: int) -> list[int]:
    statuses = []
    for i in range(n):
        statuses.append((await _send(srs, sip, _request("INVITE", f"f{i}", _sdp([42000])))).status)
    return statuses


async def test_a_flood_of_refusals_leaves_a_bounded_number_of_rows() -> None:
    from siprec_recorder.siprec.admission import Budgets

    now = [1000.0]
    index = LiveIndex()
    srs, sip, _ports = _budget_srs(Budgets(), index=index, max_sessions_per_source=1)
    srs.clock = lambda: now[0]
    assert (await _send(srs, sip, _request("INVITE", "held", _sdp([40000])))).status == 200
    assert set(await _flood(srs, sip, 100)) == {503}
    burst = srs.REFUSAL_ROWS_BURST
    assert len(index.declined) == burst
    assert {d.reason for d in index.declined} == {"source-at-capacity"}
    assert {d.recorded_number for d in index.declined} == {"+32470000001"}
    assert srs.counters.refusals_not_indexed == {("sessions-per-source", "row-limit"): 100 - burst}
    assert srs.admission.refused == {"sessions-per-source": 100}
    # The policy is asked only while there was room for a row.
    assert srs.policy.evaluated == burst
    # Ten seconds later the bucket has refilled by ten rows.
    now[0] += 10 / srs.REFUSAL_ROWS_PER_SECOND
    await _flood(srs, sip, 30)
    assert len(index.declined) == burst + 10


async def test_a_refused_call_the_policy_would_not_record_leaves_no_row() -> None:
    from siprec_recorder.siprec.admission import Budgets

    index = LiveIndex()
    policy = Policy(governed=False)
    srs, sip, _ports = _budget_srs(Budgets(), index=index, policy=policy, max_sessions_per_source=1)
    assert (await _send(srs, sip, _request("INVITE", "held", _sdp([40000])))).status == 200
    assert set(await _flood(srs, sip, 5)) == {503}
    assert index.declined == []
    assert srs.counters.refusals_not_indexed == {("sessions-per-source", "not-governed"): 5}
