"""SIP behaviour of the running recorder that every SRC relies on, over a raw UDP socket."""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.integration]


def request(
    method: str,
    target: tuple[str, int],
    *,
    body: bytes = b"",
    ctype: str | None = None,
    extra: str = "",
    call_id: str | None = None,
    to_tag: str | None = None,
    siprec: bool = True,
) -> tuple[bytes, socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    port = s.getsockname()[1]
    cid = call_id or uuid.uuid4().hex
    to = f"<sip:srs@127.0.0.1:{target[1]}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:srs@127.0.0.1:{target[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        "Max-Forwards: 70",
        f"From: <sip:+32470000001@127.0.0.1>;tag={uuid.uuid4().hex[:8]}",
        f"To: {to}",
        f"Call-ID: {cid}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:src@127.0.0.1:{port}>" + (";+sip.src" if siprec else ""),
    ]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {len(body)}")
    s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body, target)
    return final_response(s), s


def final_response(s: socket.socket) -> bytes:
    while True:
        data, _ = s.recvfrom(65535)
        if not data.startswith(b"SIP/2.0 1"):
            return data


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def header(data: bytes, name: str) -> str | None:
    for line in data.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def test_options_is_answered_for_src_health_checks(recorder: Any) -> None:
    resp, _ = request("OPTIONS", recorder.listeners["udp"])
    assert status(resp) == 200
    assert "INVITE" in (header(resp, "Allow") or "")


@pytest.mark.parametrize(
    ("method", "code"), [("MESSAGE", 405), ("REGISTER", 405), ("FROBNICATE", 501)]
)
def test_unsupported_methods(recorder: Any, method: str, code: int) -> None:
    resp, _ = request(method, recorder.listeners["udp"])
    assert status(resp) == code
    assert header(resp, "Allow") is not None


def test_invite_without_sdp_gets_our_offer_and_an_ack_without_answer_ends_it(
    recorder: Any,
) -> None:
    """Delayed offer (RFC 3261 13.2.1; Cisco CUCM's built-in bridge): the offer goes in the
    200 OK, recvonly, with every codec we decode; an ACK with no answer ends the call."""
    resp, s = request("INVITE", recorder.listeners["udp"], call_id="delayed-1")
    assert status(resp) == 200
    offer = resp.split(b"\r\n\r\n", 1)[1].decode()
    mlines = [line for line in offer.split("\r\n") if line.startswith("m=")]
    assert len(mlines) == 1 and mlines[0].endswith("RTP/AVP 8 0 9 18 101")
    assert "a=recvonly" in offer and "a=rtpmap:101 telephone-event/8000" in offer
    to = header(resp, "To") or ""
    via = header(resp, "Via") or ""
    ack = (
        f"ACK sip:srs@127.0.0.1:{recorder.listeners['udp'][1]} SIP/2.0\r\n"
        f"Via: {via.split(';received')[0].split(';rport')[0]};branch=z9hG4bKack1\r\n"
        f"From: {header(resp, 'From')}\r\nTo: {to}\r\nCall-ID: delayed-1\r\n"
        "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    s.sendto(ack.encode(), recorder.listeners["udp"])
    bye, _ = s.recvfrom(65535)
    assert bye.startswith(b"BYE ")


def test_bye_for_an_unknown_dialog_gets_481(recorder: Any) -> None:
    resp, _ = request("BYE", recorder.listeners["udp"], to_tag="nope")
    assert status(resp) == 481


def test_unsupported_require_gets_420(recorder: Any) -> None:
    resp, _ = request("INVITE", recorder.listeners["udp"], extra="Require: 100rel, frobnication")
    assert status(resp) == 420
    assert header(resp, "Unsupported") == "frobnication"


def test_unparseable_sdp_gets_400_and_the_next_call_works(recorder: Any) -> None:
    resp, _ = request(
        "INVITE", recorder.listeners["udp"], body=b"this is not SDP", ctype="application/sdp"
    )
    assert status(resp) == 400
    good = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n"
    )
    resp, _ = request("INVITE", recorder.listeners["udp"], body=good, ctype="application/sdp")
    assert status(resp) == 200
    answer = resp.split(b"\r\n\r\n", 1)[1].decode()
    assert "a=label:1" in answer and "a=recvonly" in answer and "m=audio 0 " not in answer


def test_metrics_endpoint_counts(recorder: Any) -> None:
    request("FROBNICATE", recorder.listeners["udp"])
    host, port = recorder.listeners["metrics"]
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    assert "siprec_sessions_active 0" in text
    assert 'siprec_responses_rejected_total{status="501"} 1' in text
    assert "siprec_storage_free_bytes" in text


def test_capacity_refusal_is_503_and_leaves_a_row(recorder_factory: Any) -> None:
    from .test_policy_calls import invite

    rec = recorder_factory(sip={"max_sessions": 1})
    assert status(invite(rec, "tel:+32470000001")) == 200
    resp = invite(rec, "tel:+32470000002")
    assert status(resp) == 503
    assert header(resp, "Retry-After") == "10"
    rows = [r for r in rec.search("--number", "+32470000002")]
    assert [(r["state"], r["reason"]) for r in rows] == [("declined", "recorder-at-capacity")]


def test_session_expires_below_min_se_gets_422(recorder: Any) -> None:
    resp, _ = request("INVITE", recorder.listeners["udp"], extra="Session-Expires: 30")
    assert status(resp) == 422
    assert header(resp, "Min-SE") == "90"


def test_tls_listener_with_a_real_tls_client(recorder_factory: Any, tmp_path: Any) -> None:
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recorder.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("recorder.test")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rec = recorder_factory(
        sip={
            "listen": ["udp:127.0.0.1:0", "tls:127.0.0.1:0"],
            "tls_certificate": str(cert_path),
            "tls_private_key": str(key_path),
        }
    )
    host, port = rec.listeners["tls"]
    ctx = ssl.create_default_context(cafile=str(cert_path))
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="recorder.test") as tls,
    ):
        msg = (
            f"OPTIONS sip:srs@recorder.test:{port};transport=tls SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n"
            "From: <sips:src@example.com>;tag=t1\r\nTo: <sips:srs@recorder.test>\r\n"
            "Call-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        tls.sendall(msg.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65535)
            assert chunk
            data += chunk
    assert data.startswith(b"SIP/2.0 200 ")
    assert b"Call-ID: tls-1" in data


def test_plain_invite_is_refused_unless_configured(recorder_factory: Any) -> None:
    """What ``svwar -m INVITE`` sends (no +sip.src, no Require: siprec, no body) is not a
    recording session: 403 and no row, no file; accept_plain_invite = true takes it."""
    rec = recorder_factory()
    resp, s = request("INVITE", rec.listeners["udp"], siprec=False)
    s.close()
    assert status(resp) == 403
    assert b'Warning: 399 - "not recorded"' in resp
    time.sleep(0.5)
    assert rec.search() == []
    assert not list(rec.recordings.rglob("*.mp3"))
    rec.stop()

    lenient = recorder_factory(sip={"accept_plain_invite": True})
    resp, s = request("INVITE", lenient.listeners["udp"], siprec=False)
    s.close()
    assert status(resp) == 200


def test_the_contact_names_the_port_of_the_transport_the_call_came_on(
    recorder_factory: Any,
) -> None:
    # TCP listed first: a UDP call's Contact must still name the UDP port, or the SRC's
    # in-dialog requests (BYE, re-INVITE) go to the TCP port over UDP and are lost.
    rec = recorder_factory(sip={"listen": ["tcp:127.0.0.1:0", "udp:127.0.0.1:0"]})
    assert rec.listeners["udp"][1] != rec.listeners["tcp"][1]
    good = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 8\r\na=label:1\r\na=sendonly\r\n"
    )
    resp, _ = request("INVITE", rec.listeners["udp"], body=good, ctype="application/sdp")
    assert status(resp) == 200
    contact = header(resp, "Contact") or ""
    assert f"127.0.0.1:{rec.listeners['udp'][1]};transport=udp" in contact, contact
