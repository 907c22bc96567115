import asyncio
import os
import socket
import time

import pytest

from siprec_recorder.rtp.endpoint import PortPool, PortsExhaustedError
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.spoolfmt import iter_records


def free_even_range(size: int) -> int:
    # above the Linux ephemeral range and the integration tests' 10000-20000 RTP ranges
    for base in range(61000 + (os.getpid() % 40) * 80, 65400, 80):
        ok = True
        for port in range(base, base + size):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free port range")


@pytest.mark.parametrize("read_tick", [0.02, 0.0], ids=["pump", "loop-reader"])
async def test_endpoint_feeds_receiver_rtp_and_rtcp(read_tick: float) -> None:
    base = free_even_range(4)
    pool = PortPool("127.0.0.1", base, base + 3, clock=lambda: 42.0, read_tick=read_tick)
    assert (pool._pump is None) == (read_tick == 0)
    leg = LegReceiver("1")
    ep = await pool.open(leg)
    assert ep.port == base and pool.in_use == 1
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(3):
            tx.sendto(
                RtpPacket(8, i, 160 * i, 9, b"\xd5" * 160).serialize(), ("127.0.0.1", ep.port)
            )
        tx.sendto(
            bytes.fromhex("80c80006") + (9).to_bytes(4, "big") + bytes(20),
            ("127.0.0.1", ep.port + 1),
        )
        for _ in range(100):
            await asyncio.sleep(0.01)
            if leg.stats.packets_received == 3 and leg.stats.rtcp_packets == 1:
                break
    finally:
        tx.close()
    recs = list(iter_records(leg.take_spool_bytes()))
    assert [r.arrival for r in recs] == [42.0] * 3
    assert leg.stats.rtcp_packets == 1
    assert leg.last_packet_at == 42.0
    pool.release(ep)
    pool.release(ep)  # idempotent
    assert pool.in_use == 0 and ep.closed


async def test_pool_exhaustion_and_round_robin_reuse() -> None:
    base = free_even_range(6)
    pool = PortPool("127.0.0.1", base, base + 4)  # the pair at base + 4 would need base + 5
    assert pool.capacity == 2
    a = await pool.open(LegReceiver("a"))
    b = await pool.open(LegReceiver("b"), rtcp_mux=True)
    assert {a.port, b.port} == {base, base + 2}
    with pytest.raises(PortsExhaustedError, match=f"no free RTP port pair in {base}-{base + 4}"):
        await pool.open(LegReceiver("c"))
    pool.release(a)
    await asyncio.sleep(0)  # transports close their sockets on the next loop iteration
    c = await pool.open(LegReceiver("c"))
    assert c.port == a.port
    pool.close_all()
    assert pool.in_use == 0


async def test_busy_port_is_skipped() -> None:
    base = free_even_range(6)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", base + 1))  # the RTCP port of the first pair
    try:
        pool = PortPool("127.0.0.1", base, base + 4)
        ep = await pool.open(LegReceiver("a"))
        assert ep.port == base + 2
        pool.release(ep)
    finally:
        blocker.close()


def test_empty_range_rejected() -> None:
    with pytest.raises(ValueError, match="empty RTP port range"):
        PortPool("127.0.0.1", 20001, 20001)


class _Stamps:
    def __init__(self) -> None:
        self.rtp: list[float] = []
        self.data: list[bytes] = []

    def receive(self, datagram: bytes, now_wall: float) -> None:
        self.rtp.append(now_wall)
        self.data.append(bytes(datagram))

    def receive_rtcp(self, datagram: bytes, now_wall: float) -> None:
        pass


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_arrival_is_the_kernel_stamp_not_the_read_time(batch_reads: bool) -> None:
    """A loop busy for 300 ms must not move the arrival times of what came in meanwhile."""
    import time

    base = free_even_range(2)
    pool = PortPool("127.0.0.1", base, base + 1, batch_reads=batch_reads)
    assert pool._pump is not None and (pool._pump.batch is not None) == batch_reads
    sink = _Stamps()
    ep = await pool.open(sink)
    assert ep.kernel_stamps
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent = []
        for i in range(5):
            sent.append(time.time())
            tx.sendto(
                RtpPacket(8, i, 160 * i, 9, b"\xd5" * 160).serialize(), ("127.0.0.1", ep.port)
            )
            time.sleep(0.06)  # the loop cannot read: it is blocked right here
        read_from = time.time()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(sink.rtp) == 5:
                break
    finally:
        tx.close()
        pool.release(ep)
    assert len(sink.rtp) == 5
    for at, stamp in zip(sent, sink.rtp, strict=True):
        assert at <= stamp + 0.001 and stamp - at < 0.02, (at, stamp, read_from)
    assert sink.rtp[0] < read_from - 0.2


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_a_backlog_of_odd_sizes_arrives_whole_and_in_order(batch_reads: bool) -> None:
    """More datagrams queued than one batch holds, of every size up to the read limit."""
    from siprec_recorder.rtp.endpoint import MAX_DATAGRAM

    base = free_even_range(2)
    pool = PortPool("127.0.0.1", base, base + 1, read_tick=0.05, batch_reads=batch_reads)
    sink = _Stamps()
    ep = await pool.open(sink)
    sizes = [0, 1, 12, 172, 1400, MAX_DATAGRAM, *range(100, 100 + 70)]
    sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for data in sent:
            tx.sendto(data, ("127.0.0.1", ep.port))
        tx.sendto(b"x" * (MAX_DATAGRAM + 100), ("127.0.0.1", ep.port))  # cut to the limit
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(sink.data) == len(sent) + 1:
                break
    finally:
        tx.close()
        pool.release(ep)
    assert sink.data[:-1] == sent
    assert sink.data[-1] == b"x" * MAX_DATAGRAM
    now = time.time()
    assert all(now - 5 < t <= now for t in sink.rtp)


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_read_all_takes_what_waits_for_the_tick(batch_reads: bool) -> None:
    """The spool flush reads the sockets itself: nothing waits in the kernel for the tick."""
    base = free_even_range(2)
    pool = PortPool("127.0.0.1", base, base + 1, read_tick=30.0, batch_reads=batch_reads)
    sink = _Stamps()
    ep = await pool.open(sink)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # More than one recvmmsg batch; recvmsg reads one a round, up to MAX_ROUNDS per call.
    count = 40 if batch_reads else 30
    try:
        for i in range(count):
            tx.sendto(bytes([i]) * 172, ("127.0.0.1", ep.port))
        time.sleep(0.05)
        assert sink.data == []  # the tick is 30 s away
        pool.read_all()
        assert sink.data == [bytes([i]) * 172 for i in range(count)]
    finally:
        tx.close()
        pool.release(ep)


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_read_now_takes_one_endpoints_backlog_only(batch_reads: bool) -> None:
    """A leg about to close reads its own queue (all of it), not every socket of the pool."""
    base = free_even_range(4)
    pool = PortPool("127.0.0.1", base, base + 3, read_tick=30.0, batch_reads=batch_reads)
    closing, other = _Stamps(), _Stamps()
    ep, ep_other = await pool.open(closing), await pool.open(other)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    count = 100  # more than one recvmmsg call takes
    try:
        for i in range(count):
            tx.sendto(bytes([i]) * 172, ("127.0.0.1", ep.port))
            tx.sendto(bytes([i]) * 20, ("127.0.0.1", ep_other.port))
        time.sleep(0.05)
        ep.read_now()
        assert closing.data == [bytes([i]) * 172 for i in range(count)]
        assert other.data == []  # its datagrams wait for the tick
    finally:
        tx.close()
        pool.release(ep)
        pool.release(ep_other)


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_what_arrives_during_a_read_waits_for_the_next(batch_reads: bool) -> None:
    """Each socket is read once per tick: a packet that arrives while the pump is reading
    other sockets waits for the next tick, with the ones after it (not read one by one)."""
    base = free_even_range(4)
    pool = PortPool("127.0.0.1", base, base + 3, read_tick=30.0, batch_reads=batch_reads)
    later = _Stamps()
    ep_later = await pool.open(later)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    class Echo(_Stamps):
        def receive(self, datagram: bytes, now_wall: float) -> None:
            super().receive(datagram, now_wall)
            tx.sendto(b"late" + datagram, ("127.0.0.1", ep_later.port))

    first = Echo()
    ep_first = await pool.open(first)
    try:
        for i in range(3):
            tx.sendto(bytes([i]) * 20, ("127.0.0.1", ep_first.port))
        time.sleep(0.05)
        pool.read_all()
        assert len(first.data) == 3
        assert later.data == []  # it arrived during the read
        time.sleep(0.05)
        pool.read_all()
        assert later.data == [b"late" + bytes([i]) * 20 for i in range(3)]
    finally:
        tx.close()
        pool.release(ep_first)
        pool.release(ep_later)


def _rtp(seq: int, ssrc: int = 9) -> bytes:
    return RtpPacket(8, seq, 160 * seq, ssrc, b"\xd5" * 160).serialize()


@pytest.mark.parametrize("batch_reads", [True, False], ids=["recvmmsg", "recvmsg"])
@pytest.mark.parametrize("latch", [False, True], ids=["offer", "latch"])
async def test_only_the_sessions_source_reaches_the_leg(batch_reads: bool, latch: bool) -> None:
    """Datagrams from another host are dropped and counted, interleaved with the real ones in
    one chunk; latching takes the first allowed host and port, then nothing else."""
    base = free_even_range(2)
    pool = PortPool("127.0.0.1", base, base + 1, batch_reads=batch_reads)
    leg = LegReceiver("1")
    ep = await pool.open(leg)
    ep.expect_source(
        "127.0.0.1",
        None,
        None,
        allowed=lambda host: host == "127.0.0.1",
        latch=latch,
        on_rejected=leg.reject_source,
    )
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good.bind(("127.0.0.1", 0))
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad.bind(("127.0.0.2", 0))
    other_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other_port.bind(("127.0.0.1", 0))
    dest = ("127.0.0.1", ep.port)
    try:
        bad.sendto(_rtp(0, ssrc=7), dest)  # before the first real packet: not latched on
        for i in range(10):
            good.sendto(_rtp(i), dest)
            bad.sendto(_rtp(i + 1), dest)  # the real SSRC, one packet ahead
        other_port.sendto(_rtp(10), dest)  # same host, another port
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ep.datagrams >= 22:
                break
        pool.read_all()
    finally:
        for s in (good, bad, other_port):
            s.close()
        pool.release(ep)
    seqs = [r.ext_seq & 0xFFFF for r in iter_records(leg.take_spool_bytes() + leg.finish())]
    if latch:  # host and port fixed by the first allowed packet
        assert seqs == list(range(10)) and leg.stats.rejected_source == 12
    else:  # the offer's host, any port
        assert seqs == list(range(11)) and leg.stats.rejected_source == 11
