"""A small blocking SIP/RTP client for the hostile-input tests: raw messages and good SIPREC calls.

Theory of operation: the tests need three things the recorder's own code must not provide
(it is what is under test): sending arbitrary bytes over UDP or TCP from a chosen loopback
address and collecting whatever comes back, a *good* SIPREC call (INVITE with SDP +
RFC 7865 metadata, ACK, RTP on every answered m-line, BYE) to prove the recorder still
records after an attack, and ACK/BYE for a 200 OK that an attack happened to obtain.

UDP answers go to the source address with the top Via's port (RFC 3261 section 18.2.2)
unless ``rport`` is present, so raw messages are sent from a socket bound to the Via port
of the message itself, on an otherwise unused loopback address (127.0.0.0/8 is all ours).
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field

__all__ = [
    "CallResult",
    "Response",
    "exchange_tcp",
    "exchange_udp",
    "parse_response",
    "siprec_call",
    "siprec_invite",
    "top_via_port",
]

_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse_response(data: bytes) -> Response | None:
    """A SIP response (status line, headers, body) or None for anything else."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)$", lines[0])
    if not m:
        return None
    compact = {
        "v": "via",
        "f": "from",
        "t": "to",
        "i": "call-id",
        "m": "contact",
        "l": "content-length",
        "c": "content-type",
    }
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            key = k.strip().lower()
            headers.setdefault(compact.get(key, key), []).append(v.strip())
    return Response(int(m.group(1)), m.group(2), headers, body)


def top_via_port(message: bytes) -> int:
    """The port of the first Via sent-by (5060 when absent or unreadable)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() in ("via", "v"):
            m = re.match(
                r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+(\[[^\]]*\]|[^\s:;,]+)(?::(\d+))?", v, re.I
            )
            if m and m.group(2) and 0 < int(m.group(2)) < 65536:
                return int(m.group(2))
            return 5060
    return 5060


def _frames(buf: bytes) -> tuple[list[bytes], bytes]:
    out: list[bytes] = []
    while True:
        buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out, buf
        m = _CL_RE.search(buf[:end])
        size = end + 4 + (int(m.group(1)) if m else 0)
        if len(buf) < size:
            return out, buf
        out.append(buf[:size])
        buf = buf[size:]


def exchange_udp(
    target: tuple[str, int],
    data: bytes,
    *,
    source_ip: str,
    source_port: int | None = None,
    wait: float = 1.5,
) -> list[Response]:
    """Send one datagram from ``source_ip``:(Via port) and collect the answers for ``wait`` s
    (returns early after a final response)."""
    port = top_via_port(data) if source_port is None else source_port
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            s.bind((source_ip, port))
        except OSError:
            s.bind((source_ip, 0))
        s.sendto(data, target)
        return _collect_udp(s, wait)
    finally:
        s.close()


def _collect_udp(s: socket.socket, wait: float) -> list[Response]:
    out: list[Response] = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            pkt = s.recv(65535)
        except (TimeoutError, OSError):
            break
        r = parse_response(pkt)
        if r is not None:
            out.append(r)
            if r.status >= 200:
                deadline = min(deadline, time.monotonic() + 0.1)
    return out


def exchange_tcp(
    target: tuple[str, int], data: bytes, *, source_ip: str = "127.0.0.1", wait: float = 1.5
) -> tuple[list[Response], bool]:
    """Send ``data`` on a new TCP connection; answers, and whether the peer closed it."""
    s = socket.create_connection(target, timeout=5, source_address=(source_ip, 0))
    out: list[Response] = []
    closed = False
    try:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                chunk = s.recv(65535)
            except (TimeoutError, OSError):
                break
            if not chunk:
                closed = True
                break
            frames, buf = _frames(buf + chunk)
            for f in frames:
                r = parse_response(f)
                if r is not None:
                    out.append(r)
                    if r.status >= 200:
                        deadline = min(deadline, time.monotonic() + 0.1)
    finally:
        s.close()
    return out, closed


# ---------------------------------------------------------------------- SIPREC calls
METADATA_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
 <datamode>complete</datamode>
 <session session_id="c2Vzc2lvbjE=">
  <sipSessionID>{call_id}</sipSessionID>
 </session>
{participants}
 <stream stream_id="c3RyZWFtMQ==" session_id="c2Vzc2lvbjE="><label>1</label></stream>
 <stream stream_id="c3RyZWFtMg==" session_id="c2Vzc2lvbjE="><label>2</label></stream>
</recording>
"""
PARTICIPANT_TEMPLATE = """ <participant participant_id="{pid}">
  <nameID aor="{aor}"><name>{name}</name></nameID>
 </participant>
 <participantstreamassoc participant_id="{pid}">
  <send>{send}</send><recv>{recv}</recv>
 </participantstreamassoc>"""


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def siprec_invite(
    *,
    call_id: str,
    local: tuple[str, int],
    target: tuple[str, int],
    transport: str,
    aors: tuple[str, str],
    rtp_port: int,
    cseq: int = 1,
    from_tag: str = "src1",
    branch: str | None = None,
) -> bytes:
    """A SIPREC INVITE: two sendonly PCMA m-lines (labels 1 and 2) and RFC 7865 metadata."""
    streams = ("c3RyZWFtMQ==", "c3RyZWFtMg==")
    parts = []
    for i, aor in enumerate(aors):
        parts.append(
            PARTICIPANT_TEMPLATE.format(
                pid=f"cGFydHk{i}",
                aor=_xml_escape(aor),
                name=f"Party {i}",
                send=streams[i],
                recv=streams[1 - i],
            )
        )
    metadata = METADATA_TEMPLATE.format(call_id=_xml_escape(call_id), participants="\n".join(parts))
    host = local[0]
    sdp = (
        f"v=0\r\no=src 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:1\r\na=sendonly\r\n"
        f"m=audio {rtp_port + 2} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n"
    )
    boundary = "interop-boundary-7866"
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}"
        f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}"
        f"--{boundary}--\r\n"
    ).encode()
    branch = branch or "z9hG4bK" + secrets.token_hex(6)
    t = transport.upper()
    head = (
        f"INVITE sip:srs@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/{t} {host}:{local[1]};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:src@{host}>;tag={from_tag}\r\n"
        f"To: <sip:srs@{target[0]}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:src@{host}:{local[1]};transport={transport}>;+sip.src\r\n"
        f"Require: siprec\r\n"
        f"Content-Type: multipart/mixed;boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def in_dialog_request(
    method: str, invite: bytes, ok: Response, cseq: int, local: tuple[str, int], transport: str
) -> bytes:
    """ACK (for a 2xx) or BYE within the dialog that ``ok`` established."""
    text = invite.split(b"\r\n\r\n", 1)[0].decode()
    hdr = {
        k.strip().lower(): v.strip()
        for k, _, v in (ln.partition(":") for ln in text.split("\r\n")[1:])
    }
    contact = ok.header("contact") or ""
    m = re.search(r"<([^>]+)>", contact)
    ruri = m.group(1) if m else text.split(" ")[1]
    to = ok.header("to") or hdr["to"]
    branch = "z9hG4bK" + secrets.token_hex(6)
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} {local[0]}:{local[1]};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: {hdr['from']}\r\nTo: {to}\r\nCall-ID: {hdr['call-id']}\r\n"
        f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def sdp_ports(body: bytes) -> list[tuple[str, int]]:
    """(connection address, port) of every m-line of an SDP answer (port 0 included)."""
    text = body.decode("utf-8", "replace")
    conn = "127.0.0.1"
    out: list[tuple[str, int]] = []
    media_conn: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("c="):
            addr = line.split()[-1]
            if out:
                media_conn = addr
                out[-1] = (addr, out[-1][1])
            else:
                conn = addr
        elif line.startswith("m="):
            out.append((conn, int(line.split()[1])))
            media_conn = None
    del media_conn
    return out


@dataclass(slots=True)
class CallResult:
    call_id: str
    status: int | None
    bye_status: int | None = None
    responses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    rtp_packets: int = 0


class _Channel:
    """One UDP socket or TCP connection to the recorder, with response collection."""

    def __init__(self, target: tuple[str, int], transport: str, source_ip: str) -> None:
        self.transport = transport
        self.target = target
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((source_ip, 0))
        else:
            self.sock = socket.create_connection(target, timeout=5, source_address=(source_ip, 0))
        self.local = self.sock.getsockname()[:2]
        self.buf = b""

    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.target)
        else:
            self.sock.sendall(data)

    def responses(self, until: float) -> list[Response]:
        """Responses until the first final one or the deadline."""
        out: list[Response] = []
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65535)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            if self.transport == "udp":
                frames = [chunk]
            else:
                frames, self.buf = _frames(self.buf + chunk)
            for f in frames:
                r = parse_response(f)
                if r is not None:
                    out.append(r)
            if any(r.status >= 200 for r in out):
                break
        return out

    def close(self) -> None:
        self.sock.close()


def _rtp(seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


# A-law of a 400 Hz-ish square tone: audible, cheap, and never all-silence.
_TONE = bytes([0xA5] * 10 + [0x25] * 10) * 8


def siprec_call(
    target: tuple[str, int],
    *,
    transport: str = "udp",
    source_ip: str = "127.0.0.1",
    aors: tuple[str, str] = ("tel:+32470000001", "tel:+32470999999"),
    duration: float = 1.0,
    call_id: str | None = None,
    timeout: float = 10.0,
    hang_up: bool = True,
) -> CallResult:
    """A complete good SIPREC call; the result says what the recorder answered."""
    call_id = call_id or f"interop-{secrets.token_hex(8)}@{source_ip}"
    ch = _Channel(target, transport, source_ip)
    try:
        invite = siprec_invite(
            call_id=call_id,
            local=ch.local,
            target=target,
            transport=transport,
            aors=aors,
            rtp_port=40000 + secrets.randbelow(5000) * 2,
        )
        ch.send(invite)
        deadline = time.monotonic() + timeout
        final: Response | None = None
        seen: list[int] = []
        resent = time.monotonic()
        while final is None and time.monotonic() < deadline:
            rs = ch.responses(min(deadline, time.monotonic() + 0.5))
            seen += [r.status for r in rs]
            final = next((r for r in rs if r.status >= 200), None)
            if final is None and transport == "udp" and not rs and time.monotonic() - resent > 1.0:
                ch.send(invite)  # Timer A, roughly
                resent = time.monotonic()
        result = CallResult(call_id, final.status if final else None, responses=seen)
        if final is None:
            return result
        result.retry_after = final.header("retry-after")
        if final.status >= 300:
            if transport == "udp":  # ACK for a non-2xx final response (same branch)
                ch.send(_ack_non2xx(invite, final))
            return result
        ch.send(in_dialog_request("ACK", invite, final, 1, ch.local, transport))
        legs = [p for p in sdp_ports(final.body) if p[1] > 0]
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((source_ip, 0))
        try:
            n = int(duration / 0.02)
            start = time.monotonic()
            for i in range(n):
                for k, (addr, port) in enumerate(legs):
                    rtp.sendto(_rtp(i, i * 160, 0x1000 + k, _TONE), (addr, port))
                    result.rtp_packets += 1
                delay = start + (i + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            rtp.close()
        if hang_up:
            bye = in_dialog_request("BYE", invite, final, 2, ch.local, transport)
            ch.send(bye)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                rs = ch.responses(min(end, time.monotonic() + 0.5))
                fin = [r for r in rs if r.status >= 200 and "BYE" in (r.header("cseq") or "")]
                if fin:
                    result.bye_status = fin[0].status
                    break
                if transport == "udp" and not rs:
                    ch.send(bye)
        return result
    finally:
        ch.close()


def _ack_non2xx(invite: bytes, final: Response) -> bytes:
    text = invite.split(b"\r\n\r\n", 1)[0].decode()
    lines = text.split("\r\n")
    keep = {k: v for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return (
        f"ACK {lines[0].split(' ')[1]} SIP/2.0\r\n"
        f"Via:{keep['Via']}\r\nMax-Forwards: 70\r\nFrom:{keep['From']}\r\n"
        f"To: {final.header('to')}\r\nCall-ID:{keep['Call-ID']}\r\n"
        f"CSeq: {keep['CSeq'].split()[0]} ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
