"""A deliberately permissive SIP UAS, used as the *baseline* SRS for the SIPp scenarios.

Theory of operation: it answers every INVITE with ``200 OK`` and an SDP answer (every
offered m-line accepted ``recvonly`` on one discard port, labels echoed), every other
request except ACK with ``200 OK``, over UDP and TCP on 127.0.0.1. It knows nothing about
SIPREC. A SIPp scenario that fails against it fails because of the scenario or of SIPp, not
because of the recorder: that is how :mod:`tests.interop.miarec` tells the recorder's faults
from the rest.

Run standalone for debugging: ``python -m tests.interop.permissive_uas`` prints its ports.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import threading
from typing import Any

__all__ = ["PermissiveUas"]

_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)


def _split(data: bytes) -> tuple[list[str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    return lines, body


def _headers(lines: list[str], name: str, compact: str = "") -> list[str]:
    out = []
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in (name.lower(), compact):
            out.append(value.strip())
    return out


def _sdp_of(content_type: str, body: bytes) -> bytes | None:
    if not body:
        return None
    ct = content_type.lower()
    if ct.startswith("application/sdp"):
        return body
    m = re.search(r'boundary="?([^";\s]+)"?', content_type, re.I)
    if not m:
        return None
    for part in body.split(b"--" + m.group(1).encode()):
        head, _, pbody = part.replace(b"\r\n", b"\n").partition(b"\n\n")
        if b"application/sdp" in head.lower():
            return pbody
    return None


def _answer(offer: bytes, port: int) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    media: list[list[str]] = []
    for raw in offer.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        raw = raw.strip()
        if raw.startswith("m="):
            parts = raw[2:].split()
            media.append([f"m={parts[0]} {port} {parts[2]} {' '.join(parts[3:])}", "a=recvonly"])
        elif raw.startswith(("a=label:", "a=rtpmap:", "a=fmtp:")) and media:
            media[-1].append(raw)
    for m in media:
        lines.extend(m)
    return ("\r\n".join(lines) + "\r\n").encode()


class PermissiveUas:
    """Start with :meth:`start` (runs its own thread and loop); :attr:`ports` after that."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []  # (method, call-id)
        self._tags: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._discard = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._discard.bind(("127.0.0.1", 0))
        self._discard.setblocking(False)

    # -- protocol ----------------------------------------------------------------------
    def handle(self, data: bytes) -> bytes | None:
        lines, body = _split(data)
        start = lines[0].split(" ")
        if len(start) < 3 or start[0].startswith("SIP/"):
            return None
        method = start[0]
        call_id = (_headers(lines, "call-id", "i") or [""])[0]
        self.requests.append((method, call_id))
        if method == "ACK":
            return None
        tag = self._tags.setdefault(call_id, secrets.token_hex(4))
        out = ["SIP/2.0 200 OK"]
        for line in lines[1:]:
            key = line.partition(":")[0].strip().lower()
            if key in ("via", "v", "from", "f", "call-id", "i", "cseq"):
                out.append(line)
            elif key in ("to", "t"):
                out.append(line if ";tag=" in line else f"{line};tag={tag}")
        out.append("Contact: <sip:uas@127.0.0.1>")
        payload = b""
        if method == "INVITE":
            ctype = (_headers(lines, "content-type", "c") or [""])[0]
            offer = _sdp_of(ctype, body)
            if offer is not None:
                payload = _answer(offer, self._discard.getsockname()[1])
                out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(payload)}")
        return ("\r\n".join(out) + "\r\n\r\n").encode() + payload

    # -- I/O -----------------------------------------------------------------------------
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        uas = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                reply = uas.handle(data)
                if reply:
                    self.transport.sendto(reply, addr)

        udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            buf = b""
            try:
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    buf += chunk
                    while True:
                        buf = buf.lstrip(b"\r\n")
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            break
                        m = _CL_RE.search(buf[:end])
                        size = end + 4 + (int(m.group(1)) if m else 0)
                        if len(buf) < size:
                            break
                        reply = uas.handle(buf[:size])
                        buf = buf[size:]
                        if reply:
                            writer.write(reply)
            except (ConnectionError, OSError):
                return
            finally:
                writer.close()

        server = await asyncio.start_server(tcp, "127.0.0.1", 0)
        self.ports = {
            "udp": udp.get_extra_info("sockname")[1],
            "tcp": server.sockets[0].getsockname()[1],
        }
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        udp.close()
        server.close()

    def start(self) -> PermissiveUas:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="permissive-uas", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("permissive UAS did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._discard.close()

    def drain_discard(self) -> None:  # pragma: no cover - keeps the socket buffer empty
        try:
            while self._discard.recv(2048):
                pass
        except BlockingIOError:
            pass


if __name__ == "__main__":  # pragma: no cover
    import time

    u = PermissiveUas().start()
    print(u.ports, flush=True)
    try:
        while True:
            time.sleep(1)
            u.drain_discard()
    except KeyboardInterrupt:
        u.stop()
