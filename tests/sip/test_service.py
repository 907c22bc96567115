"""SipService on real loopback sockets: INVITE / 200 / ACK over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from siprec_recorder.sip import (
    AckReceived,
    Address,
    RequestReceived,
    SipCore,
    SipResponse,
    make_response,
    parse_message,
)
from siprec_recorder.sip.events import Event
from siprec_recorder.sip.transport import SipService, TlsSettings, parse_listen

pytestmark = pytest.mark.integration


def request(method: str, port: int, transport: str, branch: str, to_tag: str = "") -> bytes:
    to = "<sip:srs@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch};rport\r\n"
        "From: <sip:src@127.0.0.1>;tag=abc\r\n"
        f"To: {to}\r\nCall-ID: svc-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.service: SipService | None = None
        self.acked = asyncio.Event()

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, RequestReceived) and self.service is not None:
            self.service.respond(
                event.transaction, make_response(event.request, 200, to_tag="srs1")
            )
        if isinstance(event, AckReceived):
            self.acked.set()


def test_parse_listen() -> None:
    assert parse_listen("udp:127.0.0.1:5060") == ("udp", "127.0.0.1", 5060)
    assert parse_listen("tcp:[::1]:0") == ("tcp", "::1", 0)


async def test_udp_invite_200_ack() -> None:
    rec = Recorder()
    service = SipService(SipCore(), rec.on_event)
    rec.service = service
    await service.start(["udp:127.0.0.1:0"])
    try:
        [(transport, host, port)] = service.bound
        assert transport == "udp" and port != 0
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        my_port = sock.getsockname()[1]
        await loop.sock_sendto(sock, request("INVITE", my_port, "UDP", "z9hG4bKu1"), (host, port))
        statuses = []
        while 200 not in statuses:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)
            response = parse_message(data)
            assert isinstance(response, SipResponse)
            statuses.append(response.status)
        assert statuses[0] == 100
        await loop.sock_sendto(
            sock, request("ACK", my_port, "UDP", "z9hG4bKu2", "srs1"), (host, port)
        )
        await asyncio.wait_for(rec.acked.wait(), 2)
        assert [type(e).__name__ for e in rec.events] == ["RequestReceived", "AckReceived"]
        sock.close()
    finally:
        await service.stop()


async def test_tcp_invite_200_ack_and_source_filter() -> None:
    rec = Recorder()
    refused: list[Address] = []
    service = SipService(
        SipCore(),
        rec.on_event,
        source_filter=lambda a: a.host == "127.0.0.1",
        on_rejected_source=lambda a, d: refused.append(a),
    )
    rec.service = service
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        reader, writer = await asyncio.open_connection(host, port)
        my_port = writer.get_extra_info("sockname")[1]
        data = request("INVITE", my_port, "TCP", "z9hG4bKt1")
        writer.write(b"\r\n\r\n" + data[:40])  # keep-alive, then a split message
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(data[40:])
        await writer.drain()
        got: list[int] = []
        while 200 not in got:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            response = parse_message(head)
            assert isinstance(response, SipResponse)
            got.append(response.status)
        writer.write(request("ACK", my_port, "TCP", "z9hG4bKt2", "srs1"))
        await writer.drain()
        await asyncio.wait_for(rec.acked.wait(), 2)
        assert refused == []
        # garbage that cannot be framed closes the connection, nothing raises
        writer.write(b"GARBAGE WITHOUT LENGTH\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        await service.stop()
    assert any(type(e).__name__ == "MessageRejected" for e in rec.events)


async def test_source_filter_refuses_udp() -> None:
    refused: list[Address] = []
    events: list[Event] = []
    service = SipService(
        SipCore(),
        events.append,
        source_filter=lambda a: False,
        on_rejected_source=lambda a, d: refused.append(a),
    )
    await service.start(["udp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(request("OPTIONS", 1, "UDP", "z9hG4bKf"), (host, port))
        for _ in range(100):
            if refused:
                break
            await asyncio.sleep(0.01)
        sock.close()
        assert refused and events == []
    finally:
        await service.stop()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("wrapped", [True, False], ids=["TlsSettings", "SSLContext"])
async def test_tls_invite_200_ack(tmp_path: Path, wrapped: bool) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    rec = Recorder()
    service = SipService(SipCore(), rec.on_event)
    rec.service = service
    # a bare SSLContext is accepted too (as app.py passes it)
    await service.start(["tls:127.0.0.1:0"], TlsSettings(server_ctx) if wrapped else server_ctx)
    try:
        [(transport, host, port)] = service.bound
        assert transport == "tls"
        reader, writer = await asyncio.open_connection(host, port, ssl=client_ctx)
        my_port = writer.get_extra_info("sockname")[1]
        writer.write(request("INVITE", my_port, "TLS", "z9hG4bKs1"))
        got: list[int] = []
        while 200 not in got:
            response = parse_message(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2))
            assert isinstance(response, SipResponse)
            got.append(response.status)
        writer.write(request("ACK", my_port, "TLS", "z9hG4bKs2", "srs1"))
        await asyncio.wait_for(rec.acked.wait(), 2)
        writer.close()
    finally:
        await service.stop()


async def test_idle_connection_closed() -> None:
    service = SipService(SipCore(), lambda e: None, idle_timeout=0.2)
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
    finally:
        await service.stop()


async def test_closed_connections_are_counted_by_budget() -> None:
    service = SipService(
        SipCore(),
        lambda e: None,
        idle_timeout=0.3,
        incomplete_timeout=0.3,
        first_message_timeout=30.0,
        max_connections_per_source=2,
    )
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        idle = await asyncio.open_connection(host, port)
        slow = await asyncio.open_connection(host, port)
        await asyncio.sleep(0.05)
        assert service.open_connections() == {"tcp": 2, "tls": 0, "tls-handshake": 0}
        third = await asyncio.open_connection(host, port)  # past connections-per-source
        assert await asyncio.wait_for(third[0].read(), 3) == b""
        slow[1].write(b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\n")  # never finished
        assert await asyncio.wait_for(slow[0].read(), 3) == b""
        assert await asyncio.wait_for(idle[0].read(), 3) == b""
        await asyncio.sleep(0.05)
        assert service.refused == {
            "connections-per-source": 1,
            "incomplete-message-timeout": 1,
            "idle-timeout": 1,
        }
        assert service.open_connections() == {"tcp": 0, "tls": 0, "tls-handshake": 0}
        for _r, w in (idle, slow, third):
            w.close()
    finally:
        await service.stop()


async def test_tls_handshake_counts_against_the_caps_and_times_out(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    service = SipService(
        SipCore(), lambda e: None, tls_handshake_timeout=0.5, max_connections_per_source=1
    )
    await service.start(["tls:127.0.0.1:0"], server_ctx)
    try:
        [(_, host, port)] = service.bound
        # A connection that never starts TLS holds its place in the caps from its first
        # moment (it used to be invisible until the handshake ended) ...
        silent = await asyncio.open_connection(host, port)
        await asyncio.sleep(0.1)
        assert service.open_connections() == {"tcp": 0, "tls": 0, "tls-handshake": 1}
        second = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(second[0].read(), 3) == b""
        assert service.refused == {"connections-per-source": 1}
        # ... and is cut off when the handshake time is over.
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(silent[0].read(), 3) == b""
        assert loop.time() - t0 < 1.5
        await asyncio.sleep(0.05)
        assert service.refused == {"connections-per-source": 1, "tls-handshake-timeout": 1}
        assert service.open_connections() == {"tcp": 0, "tls": 0, "tls-handshake": 0}
        # A real TLS client still gets in afterwards.
        client_ctx = ssl.create_default_context(cafile=str(cert))
        reader, writer = await asyncio.open_connection(host, port, ssl=client_ctx)
        await asyncio.sleep(0.05)
        assert service.open_connections() == {"tcp": 0, "tls": 1, "tls-handshake": 0}
        writer.close()
        for _r, w in (silent, second):
            w.close()
    finally:
        await service.stop()


async def test_tcp_oversized_gets_513_then_close() -> None:
    events: list[Event] = []
    service = SipService(SipCore(max_message_size=600), events.append)
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        reader, writer = await asyncio.open_connection(host, port)
        data = request("INVITE", 1, "TCP", "z9hG4bKbig").replace(
            b"Content-Length: 0", b"Content-Length: 5000"
        )
        writer.write(data)
        answer = await asyncio.wait_for(reader.read(), 2)
        assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n")
        writer.close()
    finally:
        await service.stop()
    assert [(type(e).__name__, getattr(e, "status", None)) for e in events] == [
        ("MessageRejected", 513)
    ]


async def test_udp_send_bye_and_receive_response() -> None:
    from siprec_recorder.sip import ResponseReceived, SipRequest
    from siprec_recorder.sip.headers import Headers

    events: list[Event] = []
    got = asyncio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, ResponseReceived):
            got.set()

    service = SipService(SipCore(), on_event)
    await service.start(["udp:127.0.0.1:0"])
    try:
        loop = asyncio.get_running_loop()
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.setblocking(False)
        peer.bind(("127.0.0.1", 0))
        peer_port = peer.getsockname()[1]
        headers = Headers.of(
            [
                ("From", "<sip:srs@127.0.0.1>;tag=srs1"),
                ("To", "<sip:src@127.0.0.1>;tag=abc"),
                ("Call-ID", "svc-1"),
                ("CSeq", "2 BYE"),
                ("Max-Forwards", "70"),
            ]
        )
        bye = SipRequest("BYE", f"sip:src@127.0.0.1:{peer_port}", headers)
        key = service.send_request(bye, Address("udp", "127.0.0.1", peer_port))
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 2)
        received = parse_message(data)
        assert isinstance(received, SipRequest) and received.method == "BYE"
        assert received.branch is not None and received.branch.startswith("z9hG4bK")
        ok = make_response(received, 200)
        await loop.sock_sendto(peer, ok.serialize(), addr)
        await asyncio.wait_for(got.wait(), 2)
        [event] = [e for e in events if isinstance(e, ResponseReceived)]
        assert event.transaction == key and event.response.status == 200
        peer.close()
    finally:
        await service.stop()


async def test_tcp_negative_content_length_gets_400_then_close() -> None:
    service = SipService(SipCore(), lambda e: None)
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        reader, writer = await asyncio.open_connection(host, port)
        vector = Path(__file__).parent.parent / "vectors" / "sip" / "rfc4475" / "ncl.dat"
        writer.write(vector.read_bytes())
        answer = await asyncio.wait_for(reader.read(), 2)
        assert answer.startswith(b"SIP/2.0 400 invalid Content-Length\r\n")
        writer.close()
    finally:
        await service.stop()


async def test_tcp_incomplete_message_closed_after_grace() -> None:
    service = SipService(SipCore(), lambda e: None, incomplete_timeout=0.2)
    await service.start(["tcp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        reader, writer = await asyncio.open_connection(host, port)
        vector = Path(__file__).parent.parent / "vectors" / "sip" / "rfc4475" / "clerr.dat"
        writer.write(vector.read_bytes())  # Content-Length 9999: waits, then gives up
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
    finally:
        await service.stop()


async def test_ipv6_tcp_listener() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    rec = Recorder()
    service = SipService(SipCore(), rec.on_event)
    rec.service = service
    try:
        await service.start(["tcp:[::1]:0"])
    except OSError:
        pytest.skip("::1 not available")
    try:
        [(_, host, port)] = service.bound
        assert host == "::1"
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(request("OPTIONS", 1, "TCP", "z9hG4bK6").replace(b"127.0.0.1:1", b"[::1]:1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"SIP/2.0 200 OK\r\n")
        writer.close()
    finally:
        await service.stop()


async def test_core_bug_does_not_kill_udp_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    core = SipCore()
    service = SipService(core, rec.on_event)
    rec.service = service
    await service.start(["udp:127.0.0.1:0"])
    try:
        [(_, host, port)] = service.bound
        real = core.receive
        calls = {"n": 0}

        def flaky(data: bytes, source: Address, now: float) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("simulated bug")
            real(data, source, now)

        monkeypatch.setattr(core, "receive", flaky)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        my_port = sock.getsockname()[1]
        await loop.sock_sendto(sock, request("OPTIONS", my_port, "UDP", "z9hG4bKa"), (host, port))
        await loop.sock_sendto(sock, request("OPTIONS", my_port, "UDP", "z9hG4bKb"), (host, port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)
        assert data.startswith(b"SIP/2.0 200 OK\r\n")
        sock.close()
    finally:
        await service.stop()


async def test_udp_listener_queues_a_burst_instead_of_dropping_it() -> None:
    """The SIP socket's receive buffer is raised (to what net.core.rmem_max allows)."""
    from siprec_recorder.sip.transport import UDP_RECV_BUFFER

    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    rmem_default = int(Path("/proc/sys/net/core/rmem_default").read_text())
    if rmem_max <= rmem_default:
        pytest.skip("net.core.rmem_max does not allow more than the default")
    service = SipService(SipCore(), Recorder().on_event)
    await service.start(["udp:127.0.0.1:0"])
    try:
        sock = service._udp[0].transport.get_extra_info("socket")
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        await service.stop()
    # Linux reports twice the size asked for (bookkeeping overhead included).
    assert got == 2 * min(UDP_RECV_BUFFER, rmem_max)
