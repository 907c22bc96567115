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
