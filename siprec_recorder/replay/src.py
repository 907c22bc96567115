"""A minimal SIPREC client (SRC) that replays a captured call against a recorder.

Theory of operation
-------------------
One :class:`CapturedCall` (see :mod:`.calls`) becomes one recording session (RFC 7866
section 5): we send an INVITE with ``Require: siprec`` and a Contact carrying the
``+sip.src`` feature tag (section 6.1.1), whose ``multipart/mixed`` body (RFC 5621 style)
holds an SDP offer with one ``sendonly`` audio m-line per captured direction, each with an
``a=label`` (RFC 4574), and RFC 7865 metadata naming the caller and the callee and the
stream each sends.  Over UDP the INVITE is retransmitted per Timer A (T1, 2*T1, ...) until
a response arrives, and given up after Timer B (64*T1) (RFC 3261 section 17.1.1.2).  A
2xx is ACKed (retransmitted 2xx are ACKed again), a 3xx-6xx is ACKed and ends the replay.

The 2xx creates the dialog (RFC 3261 section 12.1.2), kept by
:class:`siprec_recorder.sip.dialog.Dialog`: its Contact is the remote target and its
Record-Route, reversed, the route set. The ACK of the 2xx and the BYE are built from it
(section 12.2.1.1): with a loose first route (``;lr``) the Request-URI is the remote target
and the routes are Route headers; with a strict one the Request-URI is that route and the
remote target the last Route. Over UDP they are sent to the first route's host and port
(resolved when it is a name), else to the remote target's; only the INVITE and the ACK of a
non-2xx (which belong to the INVITE transaction, section 17.1.1.3) go to ``to``. Over TCP
every request stays on the one connection to ``to``: it is the flow the dialog was made on
(a proxy in front of the recorder is that connection's peer and the first route anyway).

Then each direction's packets are sent, with their original payload type, marker,
sequence number, timestamp, SSRC and payload bytes, to the port of the answer's m-line
with the same label (or the same position), paced by the capture's timestamps divided by
``speed``.  Finally a BYE is sent (retransmitted per Timer E until a final response or
Timer F) -- unless the recorder hung up first, which we answer with 200.

With ``srtp=True`` each m-line offers ``RTP/SAVP`` with an ``a=crypto`` line of
``srtp_suite`` (default ``AES_CM_128_HMAC_SHA1_80``; also ``AES_CM_128_HMAC_SHA1_32``,
``AEAD_AES_128_GCM``, ``AEAD_AES_256_GCM``) carrying a fresh random master key and salt
(RFC 4568) and every packet is protected with libsrtp (pylibsrtp).  With ``srtp_key``
(``"<suite> inline:<base64>"``) the capture's RTP is taken to be SRTP already: the offer
carries that key and the captured packets are sent as they are (header rebuilt from the
captured fields, which is exact for the plain 12-octet headers SRTP captures have), so a
wrong key shows how the recorder treats packets that fail authentication.

``max_seconds`` replays only the packets within that many seconds of the first one sent,
``skip_seconds`` starts that far into the captured media (both on the capture's clock).

Over TCP, everything goes over one connection, framed by Content-Length.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import socket
import struct
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from siprec_recorder.errors import LocalProtocolError
from siprec_recorder.sip.dialog import Dialog, DialogId
from siprec_recorder.sip.errors import SipParseError
from siprec_recorder.sip.headers import Headers
from siprec_recorder.sip.message import SipRequest, SipResponse

from .calls import CapturedCall, Leg
from .sipmini import MiniMessage, MiniSdp, StreamFramer, parse_message, sdp_of

__all__ = ["ReplayResult", "SrcOptions", "replay_call"]

#: SDES suites the tool can protect with (pylibsrtp profile name, master key+salt octets).
SRTP_SUITES: dict[str, tuple[str, int]] = {
    "AES_CM_128_HMAC_SHA1_80": ("SRTP_PROFILE_AES128_CM_SHA1_80", 30),
    "AES_CM_128_HMAC_SHA1_32": ("SRTP_PROFILE_AES128_CM_SHA1_32", 30),
    "AEAD_AES_128_GCM": ("SRTP_PROFILE_AEAD_AES_128_GCM", 28),
    "AEAD_AES_256_GCM": ("SRTP_PROFILE_AEAD_AES_256_GCM", 44),
}

ROLE_LABELS = ("1", "2")  # label of the caller's stream, label of the callee's stream
_USER_AGENT = "siprec-recorder-replay/0.1"


@dataclass(frozen=True, slots=True)
class SrcOptions:
    """How to replay: where to, how fast, which labels, timers."""

    to: tuple[str, int]
    transport: str = "udp"
    speed: float = 1.0
    local_host: str = "127.0.0.1"
    srtp: bool = False
    labels: tuple[str, str] = ROLE_LABELS
    caller_aor: str | None = None
    callee_aor: str | None = None
    t1: float = 0.5
    t2: float = 4.0
    answer_timeout: float = 32.0
    srtp_suite: str = "AES_CM_128_HMAC_SHA1_80"
    srtp_key: str | None = None  # "<suite> inline:<b64>": the capture is SRTP, sent as-is
    max_seconds: float | None = None
    skip_seconds: float = 0.0


@dataclass(slots=True)
class ReplayResult:
    """What happened: the INVITE's final status (0: no answer), what was sent per label."""

    call_id: str
    status: int
    packets_sent: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    answer_sdp: str | None = None
    sent_payloads: dict[str, list[bytes]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # label -> 'caller' | 'callee'
    bye_status: int | None = None
    hung_up_by_recorder: bool = False
    reason: str = ""
    setup_s: float | None = None  # INVITE sent -> final response received
    answered_at: float | None = None  # wall clock when the final response to INVITE came
    bye_sent_at: float | None = None  # wall clock, for "BYE to finished file" measurements
    # Seconds from the first to the last media packet actually sent: the capture's span
    # plus whatever lateness the sender's scheduling added (a loaded machine).
    media_span_s: float = 0.0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and (self.bye_status == 200 or self.hung_up_by_recorder)


# -- SIP channel: UDP or TCP, messages in, bytes out --------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, inbox: asyncio.Queue[MiniMessage]) -> None:
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        message = parse_message(data)
        if message is not None:
            self.inbox.put_nowait(message)


class _Channel:
    """One SIP flow to the recorder."""

    def __init__(self, options: SrcOptions) -> None:
        self.options = options
        self.inbox: asyncio.Queue[MiniMessage] = asyncio.Queue()
        self.local: tuple[str, int] = (options.local_host, 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def reliable(self) -> bool:
        return self.options.transport == "tcp"

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.reliable:
            reader, writer = await asyncio.open_connection(
                self.options.to[0], self.options.to[1], local_addr=(self.options.local_host, 0)
            )
            self._writer = writer
            sockname = writer.get_extra_info("sockname")
            self.local = (str(sockname[0]), int(sockname[1]))
            self._reader_task = asyncio.create_task(self._read_stream(reader))
        else:
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.inbox), local_addr=(self.options.local_host, 0)
            )
            self._udp = transport
            sockname = transport.get_extra_info("sockname")
            self.local = (str(sockname[0]), int(sockname[1]))

    async def _read_stream(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError, ValueError):
            while data := await reader.read(65536):
                for raw in framer.feed(data):
                    message = parse_message(raw)
                    if message is not None:
                        self.inbox.put_nowait(message)

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        """Send over the connection (TCP), or as a datagram to ``to`` (default: the recorder
        address of the options)."""
        if self._writer is not None:
            self._writer.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, to or self.options.to)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


# -- message text ---------------------------------------------------------------------


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_version(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def _token() -> str:
    return uuid.uuid4().hex[:16]


def _b64id() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


@dataclass(slots=True)
class _OfferedLeg:
    label: str
    leg: Leg
    sock: socket.socket
    port: int
    key: bytes | None  # SRTP master key + salt


def _crypto_value(options: SrcOptions, key: bytes | None) -> str | None:
    """The a=crypto value offered: the given key, or our random one, or None (plain RTP)."""
    if options.srtp_key is not None:
        return "1 " + " ".join(options.srtp_key.split())
    if options.srtp and key is not None:
        return f"1 {options.srtp_suite} inline:{base64.b64encode(key).decode()}"
    return None


def _media_lines(offered: _OfferedLeg, host: str, crypto: str | None) -> list[str]:
    leg = offered.leg
    pts = leg.payload_types
    proto = "RTP/SAVP" if crypto else "RTP/AVP"
    lines = [f"m=audio {offered.port} {proto} {' '.join(str(pt) for pt in pts)}"]
    lines.append(f"c=IN {_ip_version(host)} {host}")
    for pt in pts:
        name = leg.rtpmap.get(pt)
        if name:
            lines.append(f"a=rtpmap:{pt} {name}")
        if pt in leg.fmtp:
            lines.append(f"a=fmtp:{pt} {leg.fmtp[pt]}")
    lines.append(f"a=label:{offered.label}")
    lines.append("a=sendonly")
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    return lines


def _sdp_offer(legs: list[_OfferedLeg], host: str, options: SrcOptions) -> str:
    session = str(int(time.time()))
    lines = [
        "v=0",
        f"o=- {session} {session} IN {_ip_version(host)} {host}",
        "s=siprec-replay",
        f"c=IN {_ip_version(host)} {host}",
        "t=0 0",
    ]
    for offered in legs:
        lines += _media_lines(offered, host, _crypto_value(options, offered.key))
    return "\r\n".join(lines) + "\r\n"


def _metadata(
    legs: list[_OfferedLeg],
    caller_aor: str,
    callee_aor: str,
    labels: tuple[str, str],
) -> str:
    """RFC 7865 metadata: one session, two participants, one stream per label."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    group_id, session_id = _b64id(), _b64id()
    stream_ids = {labels[0]: _b64id(), labels[1]: _b64id()}
    offered = {o.label for o in legs}
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">',
        "  <datamode>complete</datamode>",
        f'  <group group_id="{group_id}">',
        f"    <associate-time>{now}</associate-time>",
        "  </group>",
        f'  <session session_id="{session_id}">',
        f"    <group-ref>{group_id}</group-ref>",
        f"    <start-time>{now}</start-time>",
        "  </session>",
        f'  <sessionrecordingassoc session_id="{session_id}">',
        f"    <associate-time>{now}</associate-time>",
        "  </sessionrecordingassoc>",
    ]
    participants = [
        (_b64id(), caller_aor, labels[0], labels[1]),
        (_b64id(), callee_aor, labels[1], labels[0]),
    ]
    for pid, aor, _send, _recv in participants:
        parts += [
            f'  <participant participant_id="{pid}">',
            f"    <nameID aor={quoteattr(aor)}/>",
            "  </participant>",
            f'  <participantsessionassoc participant_id="{pid}" session_id="{session_id}">',
            f"    <associate-time>{now}</associate-time>",
            "  </participantsessionassoc>",
        ]
    for label in labels:
        if label in offered:
            parts += [
                f'  <stream stream_id="{stream_ids[label]}" session_id="{session_id}">',
                f"    <label>{label}</label>",
                "  </stream>",
            ]
    for pid, _aor, send, recv in participants:
        parts.append(f'  <participantstreamassoc participant_id="{pid}">')
        if send in offered:
            parts.append(f"    <send>{stream_ids[send]}</send>")
        if recv in offered:
            parts.append(f"    <recv>{stream_ids[recv]}</recv>")
        parts.append("  </participantstreamassoc>")
    parts.append("</recording>")
    return "\r\n".join(parts) + "\r\n"


def _multipart(sdp: str, metadata: str) -> tuple[str, bytes]:
    boundary = "siprec-replay-" + _token()
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}"
        f"\r\n--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}"
        f"\r\n--{boundary}--\r\n"
    )
    return f"multipart/mixed;boundary={boundary}", body.encode()


@dataclass(slots=True)
class _Uac:
    """What we say about ourselves in the requests we send (the SRC's side of the session).

    Builds the requests of the INVITE transaction (the INVITE and the ACK of a non-2xx,
    which go to the Request-URI ``sip:srs@<to>``); the requests inside the dialog a 2xx
    creates are built by its :class:`Dialog` with :meth:`in_dialog_headers`."""

    call_id: str
    local_tag: str
    request_uri: str
    to_uri: str
    from_uri: str
    contact: str
    via_transport: str
    local: tuple[str, int]

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.via_transport} {_hostport(*self.local)};branch={branch};rport"

    def in_dialog_headers(self) -> tuple[tuple[str, str], ...]:
        """Via (a new branch: a new transaction), Contact and User-Agent of a request
        inside the dialog."""
        return (
            ("Via", self.via("z9hG4bK" + _token())),
            ("Contact", self.contact),
            ("User-Agent", _USER_AGENT),
        )

    def request(
        self,
        method: str,
        branch: str,
        *,
        cseq: int,
        remote_tag: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        content_type: str | None = None,
        body: bytes = b"",
    ) -> SipRequest:
        to = f"<{self.to_uri}>" + (f";tag={remote_tag}" if remote_tag else "")
        headers = [
            ("Via", self.via(branch)),
            ("Max-Forwards", "70"),
            ("From", f"<{self.from_uri}>;tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.contact),
            ("User-Agent", _USER_AGENT),
            *extra,
        ]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        return SipRequest(method, self.request_uri, Headers.of(headers), body)


def _dialog_after(uac: _Uac, invite: SipRequest, final: MiniMessage) -> Dialog:
    """The dialog the 2xx ``final`` to ``invite`` creates (RFC 3261 section 12.1.2).

    A 2xx whose Contact, To or Record-Route we cannot read still gets its ACK and BYE:
    then to the INVITE's Request-URI, without a route set."""
    response = SipResponse(final.status or 200, final.reason, Headers.of(final.headers))
    try:
        dialog = Dialog.from_response(invite, response)
        dialog.ack(invite.cseq[0])  # every header it copies must parse
        _first_hop(dialog)
        return dialog
    except SipParseError:
        tag = _tag_of(final.header("to"))
        for remote_tag in (tag, None) if tag else (None,):
            to = f"<{uac.to_uri}>" + (f";tag={remote_tag}" if remote_tag else "")
            dialog = Dialog(
                DialogId(uac.call_id, uac.local_tag, remote_tag or ""),
                f"<{uac.from_uri}>",
                to,
                invite.uri,
                (),
                invite.cseq[0],
                0,
            )
            try:
                dialog.ack(invite.cseq[0])
            except SipParseError:  # a To tag that is no token
                continue
            return dialog
        raise


def _first_hop(dialog: Dialog) -> tuple[str, int] | None:
    """Host and port an in-dialog request goes to first: the first route's, else the remote
    target's (5060, 5061 for sips, when the URI has no port); None when that is no SIP URI."""
    uri = dialog.next_hop()
    if uri is None:
        return None
    host = (uri.param("maddr") or uri.host).strip("[]")
    return host, uri.port or (5061 if uri.scheme == "sips" else 5060)


async def _destination(dialog: Dialog, options: SrcOptions) -> tuple[str, int]:
    """Where our in-dialog datagrams go: :func:`_first_hop`, its name resolved (A/AAAA in
    the family we send from; RFC 3263 NAPTR/SRV lookups are not done); ``options.to`` when
    there is no usable hop."""
    hop = _first_hop(dialog)
    if hop is None:
        return options.to
    host, port = hop
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host, port
    family = socket.AF_INET6 if ":" in options.local_host else socket.AF_INET
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_DGRAM
        )
    except OSError:
        return options.to
    if not infos:
        return options.to
    address = infos[0][4]
    return str(address[0]), int(address[1])


def _warning_text(values: list[str]) -> str:
    """The texts of Warning headers (RFC 3261 section 20.43: ``code agent "text"``), which is
    where a recorder says why it refused, e.g. ``not recorded: private-mode``."""
    texts = []
    for value in values:
        code, _, rest = value.strip().partition(" ")
        _agent, _, text = rest.partition(" ")
        texts.append(text.strip().strip('"') if text else value.strip())
    return "; ".join(t for t in texts if t)


def _response_to(request: MiniMessage, status: int, reason: str) -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for name in ("via", "from", "to", "call-id", "cseq"):
        for value in request.header_all(name):
            if name == "to" and ";tag=" not in value:
                value += ";tag=" + _token()
            lines.append(f"{name.title() if name != 'call-id' else 'Call-ID'}: {value}")
    lines += [f"User-Agent: {_USER_AGENT}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- the replay -----------------------------------------------------------------------


def _rtp_bytes(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


def _bind_rtp_socket(host: str) -> tuple[socket.socket, int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock, int(sock.getsockname()[1])


def _destinations(
    answer: MiniSdp | None, legs: list[_OfferedLeg], fallback_host: str
) -> dict[str, tuple[str, int]]:
    """label -> where to send, from the answer (matched by label, else by position)."""
    if answer is None:
        return {}
    media = list(answer.media)
    out: dict[str, tuple[str, int]] = {}
    for index, offered in enumerate(legs):
        m = next((x for x in media if x.label == offered.label), None)
        if m is None and index < len(media):
            m = media[index]
        if m is None or m.port == 0 or m.direction == "inactive":
            continue
        host = m.connection or fallback_host
        if host in ("0.0.0.0", "::"):
            host = fallback_host
        out[offered.label] = (host, m.port)
    return out


async def replay_call(call: CapturedCall, options: SrcOptions) -> ReplayResult:
    """Replay one captured call as a SIPREC session (see the module docstring)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    channel = _Channel(options)
    await channel.open()
    role_label = {"caller": options.labels[0], "callee": options.labels[1]}
    offered: list[_OfferedLeg] = []
    try:
        for leg in call.legs:
            sock, port = _bind_rtp_socket(options.local_host)
            key = _random_key(options) if options.srtp and not options.srtp_key else None
            offered.append(_OfferedLeg(role_label[leg.role], leg, sock, port, key))
        offered.sort(key=lambda o: options.labels.index(o.label))
        host = channel.local[0]
        transport = options.transport.upper()
        target = _hostport(*options.to)
        suffix = ";transport=tcp" if channel.reliable else ""
        uac = _Uac(
            call_id=f"{uuid.uuid4().hex}@{host}",
            local_tag=_token(),
            request_uri=f"sip:srs@{target}{suffix}",
            to_uri=f"sip:srs@{target}",
            from_uri=f"sip:src@{_hostport(*channel.local)}",
            contact=f"<sip:src@{_hostport(*channel.local)}{suffix}>;+sip.src",
            via_transport=transport,
            local=channel.local,
        )
        result = ReplayResult(call_id=uac.call_id, status=0)
        result.labels = {o.label: o.leg.role for o in offered}
        caller_aor = options.caller_aor or call.caller
        callee_aor = options.callee_aor or call.callee
        sdp = _sdp_offer(offered, host, options)
        content_type, body = _multipart(
            sdp, _metadata(offered, caller_aor, callee_aor, options.labels)
        )
        invite_branch = "z9hG4bK" + _token()
        invite = uac.request(
            "INVITE",
            invite_branch,
            cseq=1,
            extra=(
                ("Require", "siprec"),
                ("Supported", "replaces"),
                ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
                ("Accept", "application/sdp, application/rs-metadata+xml"),
            ),
            content_type=content_type,
            body=body,
        )
        invite_at = loop.time()
        final = await _invite_transaction(channel, invite.serialize(), options)
        result.setup_s = loop.time() - invite_at
        result.answered_at = time.time()
        if final is None:
            result.reason = "no final response to INVITE"
            result.duration = loop.time() - started
            return result
        result.status = final.status or 0
        if result.status >= 300:
            # part of the INVITE transaction: same branch, same hop (section 17.1.1.3)
            ack = uac.request("ACK", invite_branch, cseq=1, remote_tag=_tag_of(final.header("to")))
            channel.send(ack.serialize())
            result.reason = f"INVITE answered {result.status} {final.reason}"
            warning = _warning_text(final.header_all("warning"))
            if warning:
                result.reason += f" ({warning})"
            result.duration = loop.time() - started
            return result
        dialog = _dialog_after(uac, invite, final)
        hop = await _destination(dialog, options)
        answer = sdp_of(final)
        result.answer_sdp = final.body.decode("utf-8", "replace") if final.body else None
        ack_bytes = dialog.ack(invite.cseq[0], extra=uac.in_dialog_headers()).serialize()
        channel.send(ack_bytes, hop)

        hangup = asyncio.Event()
        listener = asyncio.create_task(_listen_in_call(channel, ack_bytes, hop, hangup, result))
        try:
            await _stream_media(
                call,
                offered,
                _destinations(answer, offered, options.to[0]),
                options,
                hangup,
                result,
            )
        finally:
            if not hangup.is_set():
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        if hangup.is_set():
            result.hung_up_by_recorder = True
        else:
            dialog, bye = dialog.request("BYE", extra=uac.in_dialog_headers())
            result.bye_sent_at = time.time()
            response = await _non_invite_transaction(
                channel, bye.serialize(), "BYE", options, ack_bytes, hop
            )
            result.bye_status = response.status if response is not None else None
        result.duration = loop.time() - started
        return result
    finally:
        for o in offered:
            o.sock.close()
        await channel.close()


def _random_key(options: SrcOptions) -> bytes:
    suite = options.srtp_suite.strip().upper()
    if suite not in SRTP_SUITES:
        raise LocalProtocolError(
            f"SRTP suite {options.srtp_suite!r} not supported (one of {', '.join(SRTP_SUITES)})"
        )
    return os.urandom(SRTP_SUITES[suite][1])


def _tag_of(value: str | None) -> str | None:
    if not value:
        return None
    tail = value.rsplit(">", 1)[-1]
    for param in tail.split(";"):
        name, _, tag = param.strip().partition("=")
        if name.lower() == "tag" and tag:
            return tag
    return None


async def _invite_transaction(
    channel: _Channel, invite: bytes, options: SrcOptions
) -> MiniMessage | None:
    """Send the INVITE (Timer A retransmissions over UDP) and return the final response.

    Without any response the INVITE is given up after Timer B (64*T1); after a
    provisional response we wait ``answer_timeout`` more for the final one.
    """
    loop = asyncio.get_running_loop()
    channel.send(invite)
    interval = options.t1
    next_retransmit = loop.time() + interval
    give_up = loop.time() + 64 * options.t1
    provisional = False
    while (now := loop.time()) < give_up:
        retransmitting = not channel.reliable and not provisional
        wait = min(give_up, next_retransmit) - now if retransmitting else give_up - now
        try:
            message = await asyncio.wait_for(channel.inbox.get(), timeout=max(wait, 0.0))
        except TimeoutError:
            if retransmitting and loop.time() >= next_retransmit:
                channel.send(invite)
                interval *= 2
                next_retransmit = loop.time() + interval
            continue
        if message.method is not None:
            if message.method == "OPTIONS":
                channel.send(_response_to(message, 200, "OK"))
            elif message.method != "ACK":
                channel.send(_response_to(message, 481, "Call/Transaction Does Not Exist"))
            continue
        cseq = message.cseq
        if cseq is None or cseq[1] != "INVITE" or message.status is None:
            continue
        if message.status < 200:
            if not provisional:
                provisional = True
                give_up = loop.time() + options.answer_timeout
            continue
        return message
    return None


async def _listen_in_call(
    channel: _Channel,
    ack: bytes,
    hop: tuple[str, int],
    hangup: asyncio.Event,
    result: ReplayResult,
) -> None:
    """During media: re-ACK retransmitted 2xx (to ``hop``), answer the recorder's BYE and
    OPTIONS."""
    while True:
        message = await channel.inbox.get()
        if message.status is not None:
            cseq = message.cseq
            if cseq is not None and cseq[1] == "INVITE" and 200 <= message.status < 300:
                channel.send(ack, hop)
            continue
        if message.method == "BYE":
            channel.send(_response_to(message, 200, "OK"))
            hangup.set()
            return
        if message.method in ("OPTIONS", "UPDATE", "INFO"):
            channel.send(_response_to(message, 200, "OK"))
        elif message.method != "ACK":
            channel.send(_response_to(message, 501, "Not Implemented"))


async def _non_invite_transaction(
    channel: _Channel,
    request: bytes,
    method: str,
    options: SrcOptions,
    ack: bytes,
    hop: tuple[str, int],
) -> MiniMessage | None:
    """Send an in-dialog request such as the BYE to ``hop`` (Timer E retransmissions over
    UDP, Timer F) and return its final response."""
    loop = asyncio.get_running_loop()
    channel.send(request, hop)
    interval = options.t1
    next_retransmit = loop.time() + interval
    give_up = loop.time() + 64 * options.t1
    while (now := loop.time()) < give_up:
        wait = give_up - now if channel.reliable else min(give_up, next_retransmit) - now
        try:
            message = await asyncio.wait_for(channel.inbox.get(), timeout=max(wait, 0.0))
        except TimeoutError:
            if not channel.reliable and loop.time() >= next_retransmit:
                channel.send(request, hop)
                interval = min(interval * 2, options.t2)
                next_retransmit = loop.time() + interval
            continue
        if message.method is not None:
            if message.method == "BYE":  # crossed BYEs
                channel.send(_response_to(message, 200, "OK"))
            continue
        cseq = message.cseq
        if cseq is not None and cseq[1] == "INVITE" and message.status and message.status < 300:
            channel.send(ack, hop)
            continue
        if cseq is None or cseq[1] != method or message.status is None or message.status < 200:
            continue
        return message
    return None


def _media_window(call: CapturedCall, options: SrcOptions) -> tuple[float, float] | None:
    """[start, end) on the capture's clock of the packets to send, or None for all."""
    if options.max_seconds is None and options.skip_seconds <= 0:
        return None
    times = [leg.packets[0].time for leg in call.legs if leg.packets]
    if not times:
        return None
    start = min(times) + max(options.skip_seconds, 0.0)
    end = start + options.max_seconds if options.max_seconds is not None else float("inf")
    return start, end


async def _stream_media(
    call: CapturedCall,
    offered: list[_OfferedLeg],
    destinations: dict[str, tuple[str, int]],
    options: SrcOptions,
    hangup: asyncio.Event,
    result: ReplayResult,
) -> None:
    """Send every captured packet of each leg to its label's port, on the capture's clock."""
    loop = asyncio.get_running_loop()
    schedule: list[tuple[float, int, _OfferedLeg, int]] = []
    window = _media_window(call, options)
    for order, o in enumerate(offered):
        result.packets_sent[o.label] = 0
        result.sent_payloads[o.label] = []
        if o.label not in destinations:
            continue
        for index, packet in enumerate(o.leg.packets):
            if window is None or window[0] <= packet.time < window[1]:
                schedule.append((packet.time, order, o, index))
    if not schedule:
        return
    schedule.sort(key=lambda item: (item[0], item[1], item[3]))
    first = schedule[0][0]
    speed = options.speed if options.speed > 0 else 1.0
    protectors = {}
    if options.srtp and not options.srtp_key:
        from pylibsrtp import Policy, Session

        profile = getattr(Policy, SRTP_SUITES[options.srtp_suite.strip().upper()][0])
        for o in offered:
            if o.key is not None:
                policy = Policy(key=o.key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
                protectors[o.label] = Session(policy=policy)
    stream = _MediaStream(schedule, first, speed, destinations, protectors, hangup, result, loop)
    _media_clock(loop).add(stream)
    await stream.done


class _MediaStream:
    """One call's packets to send, in order, each at its time on the capture's clock."""

    def __init__(
        self,
        schedule: list[tuple[float, int, _OfferedLeg, int]],
        first: float,
        speed: float,
        destinations: dict[str, tuple[str, int]],
        protectors: dict[str, Any],
        hangup: asyncio.Event,
        result: ReplayResult,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.schedule = schedule
        self.first = first
        self.speed = speed
        self.destinations = destinations
        self.protectors = protectors
        self.hangup = hangup
        self.result = result
        self.t0 = loop.time()
        self.next = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def send_due(self, now: float) -> bool:
        """Send every packet due by ``now``; False once there is nothing more to send."""
        schedule = self.schedule
        result = self.result
        while self.next < len(schedule):
            if self.hangup.is_set():
                return False
            packet_time, _order, o, index = schedule[self.next]
            if self.t0 + (packet_time - self.first) / self.speed > now + 0.0005:
                return True
            packet = o.leg.packets[index]
            data = _rtp_bytes(
                packet.payload_type,
                packet.marker,
                packet.sequence_number,
                packet.timestamp,
                packet.ssrc,
                packet.payload,
            )
            protector = self.protectors.get(o.label)
            if protector is not None:
                data = protector.protect(data)
            try:
                o.sock.sendto(data, self.destinations[o.label])
            except (BlockingIOError, InterruptedError):
                return True  # the socket buffer is full: this packet again at the next tick
            except OSError:
                self.next += 1
                continue
            self.next += 1
            result.packets_sent[o.label] += 1
            result.sent_payloads[o.label].append(packet.payload)
            result.media_span_s = now - self.t0
        return False


class _MediaClock:
    """Sends the due packets of every call in progress from one task per event loop.

    A coroutine per call sleeping until each of its packets wakes the loop 50 times a
    second per call; with hundreds of calls in one load generator that costs more CPU than
    the sending. One task ticking every ``TICK`` seconds sends for all calls instead (each
    packet leaves at most ``TICK`` late: jitter an SRC on a real network has anyway).
    """

    TICK = 0.005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: list[_MediaStream] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, stream: _MediaStream) -> None:
        self.streams.append(stream)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        while self.streams:
            now = self.loop.time()
            active = []
            for stream in self.streams:
                if stream.done.done():
                    continue
                try:
                    more = stream.send_due(now)
                except Exception as exc:  # a broken stream ends alone, not the others
                    stream.done.set_exception(exc)
                    continue
                if more:
                    active.append(stream)
                else:
                    stream.done.set_result(None)
            self.streams = active
            await asyncio.sleep(self.TICK)


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _MediaClock] = (
    weakref.WeakKeyDictionary()
)


def _media_clock(loop: asyncio.AbstractEventLoop) -> _MediaClock:
    clock = _CLOCKS.get(loop)
    if clock is None:
        clock = _CLOCKS[loop] = _MediaClock(loop)
    return clock
