"""Real alert receivers on loopback for the tests: an HTTP webhook endpoint, an SMTP server
with STARTTLS (aiosmtpd, a self-signed certificate made here) and a syslog listener (UDP and
TCP). Each runs in its own thread and keeps what it received."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@dataclass
class Webhook:
    """POSTs received on http://127.0.0.1:PORT/alerts; ``status`` is what it answers.

    ``delay`` holds every answer that long (it widens the window of a race between two
    senders); the first ``holding`` requests get no answer until :meth:`release` (a sender
    that hangs, or dies, in the middle of a delivery)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay: float = 0.0
    holding: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _held: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def release(self) -> None:
        """Answer the held requests, and every later one at once."""
        self._released.set()

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner._lock:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    hold = owner._held < owner.holding
                    owner._held += hold
                if hold:
                    owner._released.wait(60)
                elif owner.delay:
                    time.sleep(owner.delay)
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (it was cancelled while we held it)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128  # senders connect many at once (the default 5 resets some)

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in ``tmp``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Smtp:
    """aiosmtpd on 127.0.0.1:PORT that requires STARTTLS; ``messages`` as parsed e-mails."""

    cert: Path
    key: Path
    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)
    _controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        owner = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                owner.tls_seen.append(session.ssl is not None)
                owner.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self._controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=ctx,
            require_starttls=True,
            ready_timeout=10,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Syslog:
    """A syslog listener on UDP and TCP (octet-counted frames) of the same port number."""

    port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _socks: list[socket.socket] = field(default_factory=list)

    def start(self) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", self.port))
        udp.settimeout(0.2)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", self.port))
        tcp.listen()
        tcp.settimeout(0.2)
        self._socks = [udp, tcp]
        threading.Thread(target=self._udp, args=(udp,), daemon=True).start()
        threading.Thread(target=self._tcp, args=(tcp,), daemon=True).start()

    def _udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(("udp", data))

    def _tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                buf = b""
                while True:
                    try:
                        chunk = conn.recv(65535)
                    except OSError:
                        break
                    if not chunk:
                        break
                    buf += chunk
                while buf:
                    length, _, rest = buf.partition(b" ")
                    n = int(length)
                    self.messages.append(("tcp", rest[:n]))
                    buf = rest[n:]

    def stop(self) -> None:
        self._stop.set()
        for s in self._socks:
            s.close()
