"""A tiny fake SRS for replay tests: answers INVITE with 200 + SDP, counts RTP, answers BYE.

It is deliberately independent of the product's SIP stack, so the replay tool is checked
against something that only knows the wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from dataclasses import dataclass, field

from siprec_recorder.replay.sipmini import MiniMessage, StreamFramer, parse_message, parse_sdp


@dataclass
class Arrival:
    at: float
    data: bytes


@dataclass
class FakeSrs:
    """Options: ``final_status`` (200 or an error), ``ignore_invites`` (drop the first N),
    ``send_100``, ``refuse_labels`` (answer port 0), ``bye_after_packets`` (hang up),
    ``record_route`` (Record-Route values of the 2xx, as a proxy chain would have added them)."""

    final_status: int = 200
    ignore_invites: int = 0
    send_100: bool = True
    refuse_labels: tuple[str, ...] = ()
    bye_after_packets: int | None = None
    transport: str = "udp"
    record_route: tuple[str, ...] = ()

    invites: list[bytes] = field(default_factory=list)
    requests: list[MiniMessage] = field(default_factory=list)
    responses: list[MiniMessage] = field(default_factory=list)
    rtp: dict[str, list[Arrival]] = field(default_factory=dict)  # label -> arrivals (last call)
    by_call: dict[str, dict[str, list[Arrival]]] = field(default_factory=dict)
    port: int = 0
    bye_received: asyncio.Event = field(default_factory=asyncio.Event)
    ack_received: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._rtp_socks: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._reply: dict[str, object] = {}
        self._packets = 0
        self._hung_up = False

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            srs = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    srs._on_sip(data, lambda out: srs._udp.sendto(out, addr))  # type: ignore[union-attr]

            transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
            self._udp = transport
            self.port = transport.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(self._on_tcp, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        return "127.0.0.1", self.port

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                for raw in framer.feed(data):
                    self._on_sip(raw, writer.write)

    def _on_sip(self, data: bytes, send: object) -> None:
        message = parse_message(data)
        assert message is not None, data
        assert callable(send)
        if message.status is not None:
            self.responses.append(message)
            return
        self.requests.append(message)
        if message.method == "INVITE":
            if len(self.invites) < self.ignore_invites:
                self.invites.append(data)
                return
            self.invites.append(data)
            self._reply["send"] = send
            if self.send_100:
                send(self._response(message, 100, "Trying"))
            if self.final_status != 200:
                send(self._response(message, self.final_status, "Not Acceptable Here"))
                return
            send(self._response(message, 200, "OK", body=self._answer(message)))
        elif message.method == "ACK":
            self.ack_received.set()
        elif message.method == "BYE":
            send(self._response(message, 200, "OK"))
            self.bye_received.set()

    def _response(self, request: MiniMessage, status: int, reason: str, body: bytes = b"") -> bytes:
        lines = [f"SIP/2.0 {status} {reason}"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for value in request.header_all(name):
                if name == "to" and "tag=" not in value:
                    value += ";tag=srs1"
                lines.append(f"{name}: {value}")
        if 200 <= status < 300:
            lines += [f"Record-Route: {value}" for value in self.record_route]
        lines.append(f"Contact: <sip:srs@127.0.0.1:{self.port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _answer(self, invite: MiniMessage) -> bytes:
        ctype = invite.header("content-type") or ""
        boundary = re.search(r"boundary=([^;]+)", ctype)
        assert boundary is not None
        sdp_part = next(
            p
            for p in invite.body.split(b"--" + boundary.group(1).encode())
            if b"application/sdp" in p
        )
        offer = parse_sdp(sdp_part.split(b"\r\n\r\n", 1)[1])
        assert offer is not None
        lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=fake", "c=IN IP4 127.0.0.1", "t=0 0"]
        self.rtp = self.by_call.setdefault(invite.call_id or "", {})
        arrivals = self.rtp
        for m in offer.media:
            label = m.label or ""
            if label in self.refuse_labels:
                port = 0
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                self._rtp_socks.append(sock)
                port = sock.getsockname()[1]
                arrivals[label] = []
                self._tasks.append(
                    asyncio.get_running_loop().create_task(self._recv_rtp(sock, arrivals[label]))
                )
            lines.append(f"m=audio {port} {m.proto} {m.formats[0]}")
            if m.formats[0] in {str(pt) for pt in m.rtpmap} and int(m.formats[0]) in m.rtpmap:
                lines.append(f"a=rtpmap:{m.formats[0]} {m.rtpmap[int(m.formats[0])]}")
            lines.append(f"a=label:{label}")
            lines.append("a=recvonly")
        return ("\r\n".join(lines) + "\r\n").encode()

    async def _recv_rtp(self, sock: socket.socket, arrivals: list[Arrival]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(sock, 4096)
            arrivals.append(Arrival(loop.time(), data))
            self._packets += 1
            if (
                self.bye_after_packets is not None
                and self._packets >= self.bye_after_packets
                and not self._hung_up
            ):
                self._hung_up = True
                self._send_bye()

    def _send_bye(self) -> None:
        invite = parse_message(self.invites[-1])
        assert invite is not None
        send = self._reply["send"]
        assert callable(send)
        frm = invite.header("from") or ""
        to = (invite.header("to") or "") + ";tag=srs1"
        via = f"SIP/2.0/{self.transport.upper()} 127.0.0.1:{self.port};branch=z9hG4bKsrsbye"
        text = (
            f"BYE sip:src@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: {to}\r\nTo: {frm}\r\n"
            f"Call-ID: {invite.call_id}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        send(text.encode())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._rtp_socks:
            sock.close()
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
