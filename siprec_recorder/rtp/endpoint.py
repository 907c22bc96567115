"""The asyncio edge of the media layer: UDP sockets feeding sans-IO leg receivers.

Theory of operation
-------------------
:class:`PortPool` owns the RTP port range (``[rtp] port_min..port_max``). Each leg gets an
even RTP port and the odd port above it for RTCP (RFC 3550 section 11), bound on the
configured address. Released pairs go to the back of the free list, so a port is not
reused while stale packets of the previous call may still be arriving. A pair that cannot
be bound (taken by another process) is skipped and retried later. When no pair is left,
:class:`PortsExhaustedError` says so clearly (the session layer refuses the stream).

:class:`RtpEndpoint` hands each datagram and its arrival time to the leg's
:meth:`LegReceiver.receive` (which copies what it keeps); nothing else runs on the receiving
loop. The RTCP port feeds :meth:`LegReceiver.receive_rtcp`. The pool's pump reads all media
sockets every ``read_tick`` (200 ms) after one ``epoll`` call, instead of waking the loop
per datagram, with one ``recvmmsg`` per socket and tick into the rows of one shared
buffer (see :class:`_Pump`); after the reads, :func:`.chunk.deliver_chunk` hands the rows to
the legs, whole runs of packets at once where it can. Without epoll, each socket has a loop
reader. The spool flush (:meth:`PortPool.read_all`) and a closing leg
(:meth:`RtpEndpoint.read_now`) read without waiting for the tick, so the tick adds nothing
to what a crash or a BYE can lose.

Media is bound to its session (RFC 3550 section 8.2 leaves the choice to the receiver; here
the rule is strict, because a recording is evidence): :meth:`RtpEndpoint.expect_source` gives
each socket the host the SDP offer named, and only datagrams from it reach the leg; any
other is counted (``stats.rejected_source``) and dropped. In latching mode (an SRC behind
NAT) the first datagram from an allowed host fixes the address and port instead. ``recvmmsg`` fills
the source address of every row beside its data, and the pump compares all rows of a chunk
with their socket's expected address in one numpy comparison; only a chunk that holds a
stranger's datagram takes a slower path.

The arrival time is the kernel's receive stamp (``SO_TIMESTAMP``), not the moment the loop
got round to reading: the render places each leg on the wall clock by arrival, so a loop
that was busy for 300 ms (a burst of INVITEs, a loaded machine) must not shift or stretch
the audio read after it. A clock passed in (tests) replaces the kernel stamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import RecorderError
from .chunk import PacketChunk, Segment, deliver_chunk

__all__ = ["PacketSink", "PortPool", "PortsExhaustedError", "RtpEndpoint"]

log = logging.getLogger(__name__)

RECV_BUFFER = 1 << 20
MAX_DATAGRAM = 2048  # RTP over UDP on a LAN/WAN path: well under the MTU
BATCH = 64  # datagrams read per wake-up of one socket (no-pump fallback)
DEFAULT_READ_TICK = 0.2  # seconds between reads of all media sockets

# SO_TIMESTAMP: the kernel stamps each datagram when it arrives (struct timeval).
_SO_TIMESTAMP: int = getattr(socket, "SO_TIMESTAMP", 29)
_SCM_TIMESTAMP: int | None = _SO_TIMESTAMP if hasattr(socket, "CMSG_SPACE") else None
_TIMEVAL = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMEVAL.size) if hasattr(socket, "CMSG_SPACE") else 0


class PacketSink(Protocol):
    """What an endpoint feeds: :class:`~siprec_recorder.rtp.leg.LegReceiver` satisfies it."""

    def receive(self, datagram: bytes, now_wall: float) -> None: ...

    def receive_rtcp(self, datagram: bytes, now_wall: float) -> None: ...


class PortsExhaustedError(RecorderError):
    """No free RTP/RTCP port pair is left in the configured range."""


def _kernel_stamp(ancdata: list[tuple[int, int, bytes]], fallback: float) -> float:
    """The ``SO_TIMESTAMP`` control message of a datagram (seconds), else ``fallback``."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMP and len(data) >= _TIMEVAL.size:
            sec, usec = _TIMEVAL.unpack_from(data)
            return float(sec + usec * 1e-6)
    return fallback


_NAME = 28  # sizeof(struct sockaddr_in6), room for either family
# The port and address octets of a sockaddr_in (sin_port, sin_addr) or sockaddr_in6.
_KEY_SLICE = {socket.AF_INET: (2, 8), socket.AF_INET6: (2, 24)}


def _sockaddr_key(host: str, port: int) -> bytes:
    """The octets a kernel writes at ``_KEY_SLICE`` for a datagram from (host, port)."""
    if ":" in host:
        # sin6_port, sin6_flowinfo (compared as zero), sin6_addr
        return port.to_bytes(2, "big") + bytes(4) + socket.inet_pton(socket.AF_INET6, host)
    return port.to_bytes(2, "big") + socket.inet_pton(socket.AF_INET, host)


def _sockaddr_of(name: bytes) -> tuple[str, int] | None:
    family = int.from_bytes(name[0:2], "little")
    port = int.from_bytes(name[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
    return None


class _Reader:
    """Reads one non-blocking UDP socket, for the pool's pump or a loop reader callback.

    With kernel stamps on, each datagram's time is when the kernel received it.
    """

    def __init__(
        self,
        sock: socket.socket,
        deliver: Callable[[bytes, float], None],
        clock: Callable[[], float],
        kernel_stamps: bool,
        leg: Any = None,
    ) -> None:
        self.sock = sock
        self.deliver = deliver
        # A sink that takes runs of packets at once (LegReceiver.claim_run, see .chunk).
        self.leg = leg if hasattr(leg, "claim_run") else None
        self.clock = clock
        self.kernel_stamps = kernel_stamps and _SCM_TIMESTAMP is not None
        if self.kernel_stamps:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
            except OSError:
                self.kernel_stamps = False
        self.datagrams = 0
        # The source filter (see expect_source): the expected (host, port) and its key as
        # the bytes of a sockaddr at _KEY_SLICE, or latching (first allowed host wins).
        self.peer: tuple[str, int | None] | None = None  # port None: any port of the host
        self.peer_key: bytes | None = None
        self.peer_mask: bytes | None = None
        self.latch: Callable[[str], bool] | None = None
        self.on_rejected: Callable[[int], None] | None = None
        self.rejected = 0

    @property
    def filtered(self) -> bool:
        return self.peer is not None or self.latch is not None

    def set_peer(self, host: str, port: int | None) -> None:
        self.peer = (host, port)
        self.peer_key = _sockaddr_key(host, port or 0)
        mask = bytearray(b"\xff" * len(self.peer_key))
        if port is None:
            mask[0:2] = b"\x00\x00"
        self.peer_mask = bytes(mask)
        self.latch = None

    def accepts(self, addr: Any) -> bool:
        """Whether a datagram from ``addr`` (a socket address tuple) is taken."""
        if self.peer is None:
            if self.latch is None:
                return True
            if not self.latch(str(addr[0])):
                return False
            self.set_peer(str(addr[0]), int(addr[1]))
            return True
        host, want = self.peer
        return str(addr[0]) == host and (want is None or int(addr[1]) == want)

    def reject(self, n: int, addr: Any) -> None:
        if not self.rejected:
            # Once per socket: enough to tell a misconfigured SRC (NAT) from an attack.
            log.warning(
                "RTP port %d: datagram from %s dropped, the session's media comes from %s",
                self.sock.getsockname()[1],
                addr,
                self.peer or "the first allowed source",
            )
        self.rejected += n
        if self.on_rejected is not None:
            self.on_rejected(n)

    def read_one(self) -> bool:
        """Read one datagram and hand it on; False when there was none (or a socket error)."""
        try:
            if self.kernel_stamps:
                data, anc, _flags, addr = self.sock.recvmsg(MAX_DATAGRAM, _CMSG_SPACE)
                now = _kernel_stamp(anc, 0.0) or self.clock()
            else:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
                now = self.clock()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # ICMP errors surfacing on the socket: nothing to do
            log.debug("RTP socket error: %s", exc)
            return False
        self.datagrams += 1
        if self.filtered and not self.accepts(addr):
            self.reject(1, addr)
            return True
        self.deliver(data, now)
        return True

    def read_ready(self) -> None:
        """The loop's reader callback (no pump): up to ``BATCH`` datagrams per wake-up."""
        for _ in range(BATCH):
            if not self.read_one():
                return


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


class _MmsgBatch:
    """``recvmmsg(2)`` through ctypes into the rows of one chunk (:mod:`.chunk`).

    One preallocated set of buffers (``size`` rows of ``MAX_DATAGRAM`` octets, each with room
    for one ``SO_TIMESTAMP`` control message) takes what a round of reads finds on all the
    sockets of a pump: :meth:`read` takes everything queued on one socket (up to ``PER_READ``
    datagrams) in one system call into the next free rows, and :meth:`dispatch` hands the
    rows to their sinks (:func:`~.chunk.deliver_chunk`), after each round or when the rows run
    out. Lengths and kernel stamps are read out of the buffers with numpy, for all rows at
    once; the source address is not asked for. :meth:`load` returns None where the C library
    has no ``recvmmsg`` (then the pump uses ``recvmsg``).
    """

    _CTRL = 32  # CMSG_SPACE(sizeof(struct timeval)) on LP64
    _MSG_DONTWAIT = 0x40
    PER_READ = 32

    def __init__(self, recvmmsg: Any, size: int, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._recvmmsg = recvmmsg
        self._data = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        self._ctrl = ctypes.create_string_buffer(self._CTRL * size)
        self._names = ctypes.create_string_buffer(_NAME * size)
        self._iov = (_IoVec * size)()
        self._msgs = (_MMsgHdr * size)()
        data, ctrl = ctypes.addressof(self._data), ctypes.addressof(self._ctrl)
        names = ctypes.addressof(self._names)
        for i in range(size):
            self._iov[i].base = data + MAX_DATAGRAM * i
            self._iov[i].len = MAX_DATAGRAM
            hdr = self._msgs[i].hdr
            hdr.iov = ctypes.addressof(self._iov[i])
            hdr.iovlen = 1
            hdr.control = ctrl + self._CTRL * i
            hdr.controllen = self._CTRL
            hdr.name = names + _NAME * i
            hdr.namelen = _NAME
        self._addr = ctypes.addressof(self._msgs)
        self._stride = ctypes.sizeof(_MMsgHdr)
        rows = np.frombuffer(memoryview(self._data), dtype=np.uint8)
        self._rows = rows.reshape(size, MAX_DATAGRAM)
        self._np_msgs = np.frombuffer(
            memoryview(self._msgs),
            dtype=np.dtype(
                {
                    "names": ["namelen", "controllen", "len"],
                    "formats": ["<u4", "<u8", "<u4"],
                    "offsets": [
                        _MsgHdr.namelen.offset,
                        _MsgHdr.controllen.offset,
                        _MMsgHdr.len.offset,
                    ],
                    "itemsize": self._stride,
                }
            ),
        )
        self._np_ctrl = np.frombuffer(
            memoryview(self._ctrl),
            dtype=np.dtype(
                [
                    ("cmsg_len", "<u8"),
                    ("level", "<i4"),
                    ("kind", "<i4"),
                    ("sec", "<i8"),
                    ("usec", "<i8"),
                ]
            ),
        )
        self._np_names = np.frombuffer(memoryview(self._names), dtype=np.uint8).reshape(size, _NAME)
        self._used = 0
        self._segments: list[Segment] = []
        self._readers: list[_Reader] = []

    @classmethod
    def load(cls, size: int = 4096) -> _MmsgBatch | None:
        # The buffer layout (control message space, header field types) assumes LP64.
        if _SCM_TIMESTAMP is None or ctypes.sizeof(ctypes.c_long) != 8:
            return None
        try:
            fn = ctypes.CDLL(None, use_errno=True).recvmmsg
        except (OSError, AttributeError):
            return None
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        return cls(fn, max(size, cls.PER_READ))

    def read(self, fd: int, reader: _Reader) -> int:
        """Read up to ``PER_READ`` queued datagrams of ``fd`` into free rows; returns how many."""
        if self.size - self._used < self.PER_READ:
            self.dispatch()
        used = self._used
        n: int = self._recvmmsg(
            fd, self._addr + used * self._stride, self.PER_READ, self._MSG_DONTWAIT, None
        )
        if n <= 0:
            return 0  # nothing queued (EAGAIN) or a socket error (ICMP): nothing to do
        self._segments.append((reader.deliver, reader.leg, used, n))
        self._readers.append(reader)
        self._used = used + n
        return n

    def dispatch(self) -> None:
        """Hand the rows read since the last dispatch to their sinks, and free them."""
        count, segments, readers = self._used, self._segments, self._readers
        if not count:
            return
        self._used, self._segments, self._readers = 0, [], []
        msgs = self._np_msgs[:count]
        ctrl = self._np_ctrl[:count]
        length = np.minimum(msgs["len"], MAX_DATAGRAM).astype(np.int64)
        arrival = ctrl["sec"] + ctrl["usec"] * 1e-6
        stamped = (
            (msgs["controllen"] >= self._CTRL)
            & (ctrl["level"] == socket.SOL_SOCKET)
            & (ctrl["kind"] == _SCM_TIMESTAMP)
        )
        if not stamped.all():
            arrival[~stamped] = self.clock()
        msgs["controllen"] = self._CTRL  # the kernel shrank them: reset for the next read
        msgs["namelen"] = _NAME
        if any(r.filtered for r in readers):
            segments = self._check_sources(segments, readers, count)
        try:
            deliver_chunk(PacketChunk(self._rows, length, arrival), segments)
        except Exception:  # pragma: no cover - a bug here must not stop the pump
            log.exception("RTP chunk of %d datagrams could not be delivered", count)

    def _check_sources(
        self, segments: list[Segment], readers: list[_Reader], count: int
    ) -> list[Segment]:
        """Drop the rows that did not come from their socket's expected address.

        One comparison of every row's source octets with its socket's key (numpy, all rows
        at once); the common chunk passes untouched. A segment holding a stranger's rows
        is split around them, its pieces delivered datagram by datagram (``leg`` None: a
        leg must appear in one segment only for the run fast path).
        """
        names = self._np_names[:count]
        lo, hi = _KEY_SLICE[socket.AF_INET6 if names[0, 0] == socket.AF_INET6 else socket.AF_INET]
        for reader, (_d, _l, start, n) in zip(readers, segments, strict=True):
            if reader.latch is not None and reader.peer is None:
                # Latching: the first row from an allowed host fixes the address (Python,
                # once per stream).
                for i in range(start, start + n):
                    addr = _sockaddr_of(bytes(names[i]))
                    if addr is not None and reader.accepts(addr):
                        break
        width = hi - lo
        expected = np.zeros((count, width), dtype=np.uint8)
        mask = np.zeros((count, width), dtype=np.uint8)
        for reader, (_d, _l, start, n) in zip(readers, segments, strict=True):
            key = reader.peer_key
            if key is not None and reader.peer_mask is not None and len(key) == width:
                expected[start : start + n] = np.frombuffer(key, dtype=np.uint8)
                mask[start : start + n] = np.frombuffer(reader.peer_mask, dtype=np.uint8)
            elif reader.filtered:  # latching, nobody allowed yet: everything is a stranger
                expected[start : start + n] = 0xFF
                mask[start : start + n] = 0xFF
        bad: npt.NDArray[np.bool_] = np.any((names[:, lo:hi] ^ expected) & mask, axis=1)
        if not bad.any():
            return segments
        out: list[Segment] = []
        for reader, seg in zip(readers, segments, strict=True):
            deliver, leg, start, n = seg
            mine = bad[start : start + n]
            rejected = int(mine.sum())
            if not rejected:
                out.append(seg)
                continue
            reader.reject(rejected, _sockaddr_of(bytes(names[start + int(np.argmax(mine))])))
            for i in np.flatnonzero(~mine).tolist():
                out.append((deliver, None, start + i, 1))
        return out


class _Pump:
    """Reads every media socket of a pool on a fixed tick instead of on each datagram.

    Waking the loop for every RTP packet (10,000 a second at 100 calls) costs more than the
    packet's own processing. With kernel receive stamps, when a datagram is read does not
    matter, so the pump lets each socket's queue fill for ``tick`` seconds and then asks
    one ``epoll`` which sockets hold data and reads each once: everything queued (up to 32
    datagrams) in one ``recvmmsg`` call (:class:`_MmsgBatch`), or datagram by datagram with
    ``recvmsg`` where that is missing. No read ever fails on an empty queue. Only a socket
    that filled its batch is read again, up to ``MAX_ROUNDS`` batches; a backlog larger than
    that is read on the next turn of the loop, so SIP is never starved.
    """

    MAX_ROUNDS = 32

    def __init__(self, tick: float, *, batch: bool = True) -> None:
        self.tick = tick
        self.batch = _MmsgBatch.load() if batch else None
        self.epoll = select.epoll()
        self.readers: dict[int, _Reader] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, reader: _Reader) -> None:
        fd = reader.sock.fileno()
        self.epoll.register(fd, select.EPOLLIN)
        self.readers[fd] = reader
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self.tick, self.run)

    def remove(self, reader: _Reader) -> None:
        fd = reader.sock.fileno()
        if self.readers.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)
        if not self.readers and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def read_ready(self) -> bool:
        """Read what every socket holds now; True when a socket still has a backlog.

        One ``epoll`` call says which sockets hold data, and each is read once (everything
        queued, up to one batch). Only a socket that filled its batch is read again: polling
        all sockets again would find those that received a packet meanwhile, and read them
        a packet at a time instead of a tick's worth at once.
        """
        events = self.epoll.poll(0)
        if not events:
            return False
        readers = self.readers
        batch = self.batch
        backlog: list[_Reader] = []
        for fd, _mask in events:
            reader = readers.get(fd)
            if reader is None:
                continue
            if batch is not None and reader.kernel_stamps:
                got = batch.read(fd, reader)
                reader.datagrams += got
                if got >= batch.PER_READ:
                    backlog.append(reader)
            elif self._read_singly(reader):
                backlog.append(reader)
        if batch is not None:
            batch.dispatch()
        return self.read_readers(backlog) if backlog else False

    def _read_singly(self, reader: _Reader) -> bool:
        """Up to ``MAX_ROUNDS`` datagrams with ``recvmsg``; True when there may be more."""
        for _ in range(self.MAX_ROUNDS):
            if not reader.read_one():
                return False
        return True

    def read_readers(self, readers: list[_Reader]) -> bool:
        """Read what these sockets hold now, up to ``MAX_ROUNDS`` batches each.

        Returns True when one of them still has a backlog (read on the next turn of the
        loop, so that SIP is never starved by a flood on one port).
        """
        batch = self.batch
        more = False
        for reader in readers:
            if batch is not None and reader.kernel_stamps:
                fd = reader.sock.fileno()
                for _ in range(self.MAX_ROUNDS):
                    got = batch.read(fd, reader)
                    reader.datagrams += got
                    batch.dispatch()
                    if got < batch.PER_READ:
                        break
                else:
                    more = True
            else:
                for _ in range(BATCH):
                    if not self._read_singly(reader):
                        break
                else:
                    more = True
        return more

    def run(self) -> None:
        self._handle = None
        backlog = self.read_ready()
        if self.readers and self._loop is not None and not self._loop.is_closed():
            delay = 0.0 if backlog else self.tick
            self._handle = self._loop.call_later(delay, self.run)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.readers.clear()
        self.epoll.close()


class RtpEndpoint:
    """Receives one leg's RTP (and on the odd port, or muxed, its RTCP)."""

    def __init__(self, sink: PacketSink, port: int, clock: Callable[[], float] = time.time):
        self.sink = sink
        self.port = port
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump: _Pump | None = None
        self._rtp: _Reader | None = None
        self._rtcp: _Reader | None = None

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket | None,
        pump: _Pump | None,
    ) -> None:
        kernel = self.clock is time.time
        self._loop = loop
        self._pump = pump
        self._rtp = _Reader(rtp_sock, self.sink.receive, self.clock, kernel, self.sink)
        if rtcp_sock is not None:
            self._rtcp = _Reader(rtcp_sock, self.sink.receive_rtcp, self.clock, kernel)
        for reader in (self._rtp, self._rtcp):
            if reader is None:
                continue
            if pump is not None:
                pump.add(loop, reader)
            else:
                loop.add_reader(reader.sock.fileno(), reader.read_ready)

    def expect_source(
        self,
        host: str | None,
        rtp_port: int | None,
        rtcp_port: int | None,
        *,
        allowed: Callable[[str], bool],
        latch: bool = False,
        on_rejected: Callable[[int], None] | None = None,
    ) -> None:
        """Accept RTP and RTCP only from ``host`` (any port: SRCs need not send from the port
        they receive on, RFC 3550 does not ask it; SIPp does not), or, with ``rtp_port`` and
        ``rtcp_port`` given, only from those ports of ``host``.

        With ``latch`` (an SRC behind NAT), or when the offer gives no usable address
        (``0.0.0.0``, port 0 or 9), the first datagram from a host that ``allowed`` accepts
        fixes the address of each socket instead. Every other datagram is dropped and
        counted through ``on_rejected``.
        """
        usable = bool(host) and host not in ("0.0.0.0", "::")
        for reader, port in ((self._rtp, rtp_port), (self._rtcp, rtcp_port)):
            if reader is None:
                continue
            reader.on_rejected = on_rejected
            if not latch and usable and host:
                reader.set_peer(host, port)
            else:
                reader.peer = reader.peer_key = None
                reader.latch = allowed

    @property
    def datagrams(self) -> int:
        return self._rtp.datagrams if self._rtp is not None else 0

    def read_now(self) -> None:
        """Read what this endpoint's sockets hold now, without waiting for the pump's tick.

        Called before a leg is closed, so that what the kernel still holds for it is
        recorded; it touches this endpoint's two sockets only, not the whole pool.
        """
        if self._pump is not None:
            self._pump.read_readers([r for r in (self._rtp, self._rtcp) if r is not None])

    @property
    def kernel_stamps(self) -> bool:
        return self._rtp is not None and self._rtp.kernel_stamps

    @property
    def closed(self) -> bool:
        return self._rtp is None

    def close(self) -> None:
        """Stop reading and close both sockets (idempotent)."""
        for reader in (self._rtp, self._rtcp):
            if reader is None:
                continue
            if self._pump is not None:
                self._pump.remove(reader)
            elif self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(reader.sock.fileno())
            reader.sock.close()
        self._rtp = self._rtcp = None


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class PortPool:
    """Allocates even RTP ports (plus the odd RTCP port) from ``port_min..port_max``."""

    def __init__(
        self,
        address: str,
        port_min: int,
        port_max: int,
        *,
        clock: Callable[[], float] = time.time,
        read_tick: float = DEFAULT_READ_TICK,
        batch_reads: bool = True,
    ) -> None:
        first = port_min + (port_min % 2)
        if port_max < first + 1:
            raise ValueError(f"empty RTP port range {port_min}-{port_max}")
        self.address = address
        self.port_min = port_min
        self.port_max = port_max
        self.clock = clock
        # A pair needs port and port + 1 inside the range.
        self._free: deque[int] = deque(range(first, port_max, 2))
        self.capacity = len(self._free)
        self._in_use: dict[int, RtpEndpoint] = {}
        # The tick pump needs epoll and kernel stamps (Linux); 0 reads on every datagram.
        use_pump = read_tick > 0 and hasattr(select, "epoll") and _SCM_TIMESTAMP is not None
        self._pump: _Pump | None = _Pump(read_tick, batch=batch_reads) if use_pump else None

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def available(self) -> int:
        return len(self._free)

    async def open(self, sink: PacketSink, *, rtcp_mux: bool = False) -> RtpEndpoint:
        """Bind a free pair and start feeding ``sink``; raises :class:`PortsExhaustedError`."""
        loop = asyncio.get_running_loop()
        tries = len(self._free)
        while tries > 0:
            tries -= 1
            port = self._free.popleft()
            try:
                rtp_sock = _bind(self.address, port)
            except OSError:
                self._free.append(port)
                continue
            try:
                rtcp_sock = _bind(self.address, port + 1)
            except OSError:
                rtp_sock.close()
                self._free.append(port)
                continue
            endpoint = RtpEndpoint(sink, port, self.clock)
            if rtcp_mux:
                # RFC 5761: RTCP arrives on the RTP port; keep the odd port reserved anyway.
                rtcp_sock.close()
                endpoint._start(loop, rtp_sock, None, self._pump)
            else:
                endpoint._start(loop, rtp_sock, rtcp_sock, self._pump)
            self._in_use[port] = endpoint
            return endpoint
        raise PortsExhaustedError(
            f"no free RTP port pair in {self.port_min}-{self.port_max} on {self.address} "
            f"({self.capacity} pairs, {len(self._in_use)} in use)"
        )

    def read_all(self) -> None:
        """Read every datagram the media sockets hold now, without waiting for the tick.

        The spool flush calls this first, so that what a crash can lose stays within one
        flush interval: packets queued in the kernel since the last tick are spooled too.
        """
        if self._pump is not None:
            self._pump.read_ready()

    def release(self, endpoint: RtpEndpoint) -> None:
        """Close the endpoint's sockets and return its pair to the pool (idempotent)."""
        endpoint.close()
        if self._in_use.pop(endpoint.port, None) is not None:
            self._free.append(endpoint.port)

    def close_all(self) -> None:
        for ep in list(self._in_use.values()):
            self.release(ep)
