"""A minimal SIPREC SRC for the crash and disk tests: one UDP dialog, real-time RTP we control.

It knows exactly what it sent and when (``packets_sent``, ``first_packet_at``), which is what
the crash test needs to measure the audio lost at a kill. SIP is written by hand from RFC 3261
and RFC 7866 shapes (multipart/mixed: SDP with two labelled sendonly m-lines + RFC 7865
metadata), independent of the recorder's own SIP code. The audio on leg 1 is a 440 Hz tone
whose level changes every 100 ms (a per-call pseudo-random pattern), A-law encoded here.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

PTIME = 0.02
SAMPLES = 160
BLOCK_S = 0.1


def lin2alaw(pcm: np.ndarray) -> bytes:
    """G.711 A-law of int16 samples (ITU-T G.711 segment encoding, even bits inverted)."""
    x = pcm.astype(np.int32) >> 3  # 13-bit
    positive = x >= 0
    mag = np.where(positive, x, -x - 1)
    seg_end = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_end, mag, side="left")
    shift = np.where(seg < 2, 1, seg)
    low = (mag >> shift) & 0x0F
    aval = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | low)
    mask = np.where(positive, 0xD5, 0x55)
    return bytes((aval ^ mask).astype(np.uint8))


def levels(seed: int, seconds: float) -> np.ndarray:
    """The tone level of each 100 ms block (0.15 .. 0.9 of full scale)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.15, 0.9, int(np.ceil(seconds / BLOCK_S)) + 1)


def tone(seed: int, seconds: float, rate: int = 8000) -> np.ndarray:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    lv = levels(seed, seconds)[(t / BLOCK_S).astype(int)]
    out: np.ndarray = (np.sin(2 * np.pi * 440 * t) * lv * 32767).astype(np.int16)
    return out


@dataclass
class SipResponse:
    status: int
    headers: dict[str, str]
    text: str


def _parse_response(data: bytes) -> SipResponse | None:
    text = data.decode("utf-8", "replace")
    head, _, _body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3})", lines[0])
    if not m:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return SipResponse(int(m.group(1)), headers, text)


@dataclass
class SrcCall:
    """One SIPREC session from a fake SRC to ``target``."""

    target: tuple[str, int]
    seed: int = 1
    caller: str = "+32470000001"
    callee: str = "+32470999999"
    host: str = "127.0.0.1"  # the SRC's own loopback address (SIP and RTP)
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@src.test")
    sock: socket.socket = field(init=False)
    rtp: socket.socket = field(init=False)
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_header: str = ""
    media: list[tuple[str, int]] = field(default_factory=list)
    packets_sent: int = 0
    ssrc: int = 0
    seq0: int = 0
    first_packet_at: float | None = None  # wall clock
    last_packet_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((self.host, 0))

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _via(self, branch: str | None = None) -> str:
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"

    def _request(
        self,
        method: str,
        cseq: int,
        to: str,
        body: bytes = b"",
        ctype: str = "",
        branch: str | None = None,
    ) -> bytes:
        host, port = self.target
        lines = [
            f"{method} sip:srs@{host}:{port} SIP/2.0",
            f"Via: {self._via(branch)}",
            f"From: <sip:{self.caller}@{self.host};user=phone>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:src@{self.host}:{self.port}>;+sip.src",
            "Max-Forwards: 70",
        ]
        if method == "INVITE":
            lines.append("Require: siprec")
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _offer(self) -> tuple[str, bytes]:
        rtp_port = int(self.rtp.getsockname()[1])
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=src 1 1 IN IP4 {self.host}",
                "s=-",
                f"c=IN IP4 {self.host}",
                "t=0 0",
                f"m=audio {rtp_port} RTP/AVP 8",
                "a=rtpmap:8 PCMA/8000",
                "a=label:1",
                "a=sendonly",
                f"m=audio {rtp_port + 2} RTP/AVP 8",
                "a=rtpmap:8 PCMA/8000",
                "a=label:2",
                "a=sendonly",
                "",
            ]
        )
        meta = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="c2Vzc2lvbjE="><sipSessionID>{self.call_id}</sipSessionID></session>
  <participant participant_id="cGExPT0="><nameID aor="tel:{self.caller}"/></participant>
  <participant participant_id="cGEyPT0="><nameID aor="tel:{self.callee}"/></participant>
  <stream stream_id="c3QxPT0=" session_id="c2Vzc2lvbjE="><label>1</label></stream>
  <stream stream_id="c3QyPT0=" session_id="c2Vzc2lvbjE="><label>2</label></stream>
  <participantstreamassoc participant_id="cGExPT0=">
    <send>c3QxPT0=</send><recv>c3QyPT0=</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="cGEyPT0=">
    <send>c3QyPT0=</send><recv>c3QxPT0=</recv>
  </participantstreamassoc>
</recording>
"""
        boundary = "srcdriver-boundary"
        body = (
            f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
            f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--{boundary}--\r\n"
        ).encode()
        return f"multipart/mixed;boundary={boundary}", body

    def _transact(self, data: bytes, timeout: float, want_final: bool = True) -> SipResponse:
        deadline = time.monotonic() + timeout
        next_send = 0.0
        interval = 0.5
        provisional = False
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send and not provisional:
                self.sock.sendto(data, self.target)
                next_send = now + interval
                interval = min(interval * 2, 4.0)
            self.sock.settimeout(max(0.01, min(next_send, deadline) - time.monotonic()))
            try:
                raw, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            resp = _parse_response(raw)
            if resp is None:
                continue  # a request from the SRS (e.g. its BYE): not expected here
            if resp.status < 200:
                provisional = True
                continue
            return resp
        raise TimeoutError(f"no final response to {data.split(b' ', 1)[0].decode()}")

    def invite(self, timeout: float = 10.0) -> SipResponse:
        """Send the INVITE; on 2xx send the ACK and remember the answer's media ports."""
        ctype, body = self._offer()
        to = "<sip:srs@{}:{}>".format(*self.target)
        branch = "z9hG4bK" + secrets.token_hex(6)
        resp = self._transact(self._request("INVITE", 1, to, body, ctype, branch), timeout)
        if resp.status >= 300:  # RFC 3261 17.1.1.3: ACK in the INVITE's transaction
            to_tagged = resp.headers.get("to") or to
            self.sock.sendto(self._request("ACK", 1, to_tagged, branch=branch), self.target)
        if 200 <= resp.status < 300:
            self.to_header = resp.headers.get("to") or resp.headers.get("t") or to
            self.sock.sendto(self._request("ACK", 1, self.to_header), self.target)
            _head, _, sdp = resp.text.partition("\r\n\r\n")
            conn = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
            host = conn.group(1) if conn else self.target[0]
            self.media = [(host, int(p)) for p in re.findall(r"^m=audio (\d+)", sdp, re.M)]
        return resp

    def start_audio(self, seconds: float) -> None:
        """Stream ``seconds`` of audio to leg 1 in real time (20 ms packets) from a thread."""
        payload = lin2alaw(tone(self.seed, seconds))
        dest = self.media[0]
        ssrc = int.from_bytes(secrets.token_bytes(4), "big")
        self.ssrc, self.seq0 = ssrc, 1000  # what an injector copies

        def run() -> None:
            t0 = time.perf_counter()
            n = len(payload) // SAMPLES
            for i in range(n):
                if self._stop.is_set():
                    return
                delay = t0 + i * PTIME - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                header = (
                    bytes([0x80, 0x08 | (0x80 if i == 0 else 0)])
                    + ((1000 + i) & 0xFFFF).to_bytes(2, "big")
                    + (i * SAMPLES).to_bytes(4, "big")
                    + ssrc.to_bytes(4, "big")
                )
                try:
                    self.rtp.sendto(header + payload[i * SAMPLES : (i + 1) * SAMPLES], dest)
                except OSError:
                    pass  # nobody listening any more (the recorder was killed)
                now = time.time()
                if self.first_packet_at is None:
                    self.first_packet_at = now
                self.last_packet_at = now
                self.packets_sent = i + 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_audio(self) -> int:
        """Stop sending; returns the packets sent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        return self.packets_sent

    def wait_audio(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def bye(self, timeout: float = 10.0) -> SipResponse:
        return self._transact(self._request("BYE", 2, self.to_header), timeout)

    def close(self) -> None:
        self.stop_audio()
        self.sock.close()
        self.rtp.close()
