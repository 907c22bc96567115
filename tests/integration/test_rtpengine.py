"""Real SRCs built on rtpengine (OpenSIPS' siprec module, Kamailio 6): Debian's ``rtpengine``
in userspace forks a real call's media to the recorder.

A session fixture starts ``rtpengine --table=-1`` (no kernel module) on loopback with its own
ng port and port range. Each test plays the SIP proxy: ``offer``/``answer`` set up a call
between two loopback "phones" A and B, ``subscribe request`` gives the recording offer (one
m-line per leg, ``a=label``, sendonly), which goes into a SIPREC INVITE to the real
``serve``; the recorder's SDP answer goes back in ``subscribe answer`` (rtpengine refuses an
answer that drops one of the offered codecs: the audit's finding), and then A and B talk
through rtpengine, which forks both directions to the recorder. The MP3 must hold both
parties' audio (envelope correlation with what each sent).

The ng control protocol is bencode over UDP: ``<cookie> <bencoded dict>`` both ways.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.compliance.srcdriver import BLOCK_S, PTIME, SAMPLES, SrcCall, levels, lin2alaw, tone
from tests.integration.audio import decode_mp3

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# -- a small ng client -------------------------------------------------------------------


def bencode(x: Any) -> bytes:
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


def bdecode(data: bytes, i: int = 0) -> tuple[Any, int]:
    c = data[i : i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1 : j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items: list[Any] = []
        while data[i : i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1 : j + 1 + n], j + 1 + n


class Rtpengine:
    def __init__(self, ng_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.ng_port, self.proc, self.log = ng_port, proc, log

    def ng(self, command: str, **args: Any) -> dict[str, Any]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        try:
            cookie = secrets.token_hex(6).encode()
            s.sendto(
                cookie + b" " + bencode({"command": command, **args}), ("127.0.0.1", self.ng_port)
            )
            data = s.recv(65535)
        finally:
            s.close()
        reply, _ = bdecode(data.split(b" ", 1)[1])
        assert isinstance(reply, dict)
        return reply


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture(scope="session")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rtpengine]:
    exe = shutil.which("rtpengine")
    if exe is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    work = tmp_path_factory.mktemp("rtpengine")
    ng_port = _free_udp_port()
    base = 20000 + (secrets.randbelow(600) * 20)  # above the recorders' 10000-20000 ranges
    log = work / "rtpengine.log"
    proc = subprocess.Popen(
        [
            exe,
            "--foreground",
            "--table=-1",  # userspace forwarding: no kernel module
            "--interface=127.0.0.1",
            f"--listen-ng=127.0.0.1:{ng_port}",
            f"--port-min={base}",
            f"--port-max={base + 199}",
            "--log-stderr",
            f"--pidfile={work / 'pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - closed with the process
    )
    engine = Rtpengine(ng_port, proc, log)
    deadline = time.monotonic() + 15
    while True:
        try:
            if engine.ng("ping").get("result") == b"pong":
                break
        except (TimeoutError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"rtpengine did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    yield engine
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the call ----------------------------------------------------------------------------


def _phone_sdp(port: int, codecs: str) -> str:
    maps = {
        "8": "a=rtpmap:8 PCMA/8000\r\n",
        "0": "a=rtpmap:0 PCMU/8000\r\n",
        "101": "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    }
    return (
        f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {codecs}\r\n"
        + "".join(maps[c] for c in codecs.split())
        + "a=sendrecv\r\n"
    )


def _port_of(sdp: bytes) -> int:
    for line in sdp.decode().split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise AssertionError(sdp)


def _ulaw(pcm: np.ndarray) -> bytes:
    x = np.clip(pcm.astype(np.int32), -32635, 32635)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.abs(x) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    return bytes((~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8))


class RecordingSrc(SrcCall):
    """The SIPREC INVITE of an rtpengine-based SRC: rtpengine's SDP plus metadata."""

    offer_sdp: str = ""

    def _offer(self) -> tuple[str, bytes]:
        one, two = _labels(self.offer_sdp)
        meta = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="c2Vzc2lvbjE="><sipSessionID>{self.call_id}</sipSessionID></session>
  <participant participant_id="cGExPT0="><nameID aor="tel:{self.caller}"/></participant>
  <participant participant_id="cGEyPT0="><nameID aor="tel:{self.callee}"/></participant>
  <stream stream_id="c3QxPT0=" session_id="c2Vzc2lvbjE="><label>{one}</label></stream>
  <stream stream_id="c3QyPT0=" session_id="c2Vzc2lvbjE="><label>{two}</label></stream>
  <participantstreamassoc participant_id="cGExPT0="><send>c3QxPT0=</send></participantstreamassoc>
  <participantstreamassoc participant_id="cGEyPT0="><send>c3QyPT0=</send></participantstreamassoc>
</recording>
"""
        b = "rtpengine-src"
        body = (
            f"--{b}\r\nContent-Type: application/sdp\r\n\r\n{self.offer_sdp}\r\n"
            f"--{b}\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{meta}\r\n--{b}--\r\n"
        ).encode()
        return f"multipart/mixed;boundary={b}", body


def _labels(sdp: str) -> list[str]:
    return [ln[8:] for ln in sdp.split("\r\n") if ln.startswith("a=label:")]


def _talk(sock: socket.socket, dest: tuple[str, int], pt: int, payload: bytes) -> None:
    ssrc = int.from_bytes(secrets.token_bytes(4), "big")
    t0 = time.perf_counter()
    for i in range(len(payload) // SAMPLES):
        delay = t0 + i * PTIME - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        head = bytes([0x80, pt | (0x80 if i == 0 else 0)]) + (i & 0xFFFF).to_bytes(2, "big")
        head += (i * SAMPLES).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
        sock.sendto(head + payload[i * SAMPLES : (i + 1) * SAMPLES], dest)


def _envelope(x: np.ndarray, rate: int, hz: float) -> np.ndarray:
    """100 ms block levels of the ``hz`` component, from where that party starts talking."""

    def band(win: int, sig: np.ndarray) -> np.ndarray:
        n = len(sig) // win
        probe = np.exp(-2j * np.pi * hz * np.arange(win) / rate)
        out: np.ndarray = np.abs((sig[: n * win].reshape(n, win) * probe).mean(axis=1))
        return out

    fine = band(rate // 100, x)  # 10 ms
    start = int(np.nonzero(fine > fine.max() * 0.05)[0][0]) * (rate // 100)
    return band(int(BLOCK_S * rate), x[start:])


@pytest.mark.parametrize(
    "kind", ["multi-codec", "plain", "srtp"], ids=["multi-codec", "plain", "srtp"]
)
def test_rtpengine_forked_call_is_recorded(
    rtpengine: Rtpengine, recorder_factory: Any, kind: str
) -> None:
    rec = recorder_factory()
    codecs = "8 0 101" if kind == "multi-codec" else "8"
    call_id = f"rtpe-{kind}-{secrets.token_hex(4)}"
    a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    seconds = 3.0
    try:
        off = rtpengine.ng(
            "offer",
            **{"call-id": call_id, "from-tag": "ta", "sdp": _phone_sdp(a.getsockname()[1], codecs)},
        )
        assert off["result"] == b"ok", off
        ans = rtpengine.ng(
            "answer",
            **{
                "call-id": call_id,
                "from-tag": "ta",
                "to-tag": "tb",
                "sdp": _phone_sdp(b.getsockname()[1], codecs),
            },
        )
        assert ans["result"] == b"ok", ans
        to_b, to_a = ("127.0.0.1", _port_of(off["sdp"])), ("127.0.0.1", _port_of(ans["sdp"]))

        sub_args: dict[str, Any] = {"call-id": call_id, "flags": ["all", "SIPREC"]}
        if kind == "srtp":
            sub_args["transport-protocol"] = "RTP/SAVP"
        sub = rtpengine.ng("subscribe request", **sub_args)
        assert sub["result"] == b"ok", sub
        offer = sub["sdp"].decode()
        if kind == "multi-codec":
            assert "RTP/AVP 8 0 101" in offer
        if kind == "srtp":
            assert "a=crypto:" in offer

        src = RecordingSrc(rec.listeners["udp"], caller="+32470000601", call_id=call_id + "@src")
        src.offer_sdp = offer
        try:
            resp = src.invite()
            assert resp.status == 200, resp.text
            answer = resp.text.partition("\r\n\r\n")[2]
            if kind == "multi-codec":
                assert " RTP/AVP 8 0 101\r\n" in answer, answer
            done = rtpengine.ng(
                "subscribe answer", **{"call-id": call_id, "to-tag": sub["to-tag"], "sdp": answer}
            )
            assert done["result"] == b"ok", (done, answer)

            # A speaks PCMA at 440 Hz, B PCMU (or PCMA) at 1,000 Hz, each with its own levels.
            pcm_a = tone(31, seconds)
            t = np.arange(len(pcm_a)) / 8000
            lv_b = levels(32, seconds)[(t / BLOCK_S).astype(int)]
            pcm_b = (np.sin(2 * np.pi * 1000 * t) * lv_b * 32767).astype(np.int16)
            pay_b, pt_b = (_ulaw(pcm_b), 0) if kind == "multi-codec" else (lin2alaw(pcm_b), 8)
            talkers = [
                threading.Thread(target=_talk, args=(a, to_a, 8, lin2alaw(pcm_a))),
                threading.Thread(target=_talk, args=(b, to_b, pt_b, pay_b)),
            ]
            for th in talkers:
                th.start()
            for th in talkers:
                th.join(seconds + 5)
            time.sleep(0.3)
            assert src.bye().status == 200
        finally:
            src.close()
    finally:
        a.close()
        b.close()
        rtpengine.ng("delete", **{"call-id": call_id})

    (row,) = rec.wait_for_recordings(1)
    assert row["state"] == "complete", row
    assert row["srtp"] == (kind == "srtp"), row
    streams = {s["label"]: s for s in row["streams"]}
    assert set(streams) == set(_labels(offer)) and len(streams) == 2
    for label in streams:
        got = streams[label]["packets_received"]
        assert got >= 0.95 * seconds / PTIME, (label, streams[label])
    pcm, rate = decode_mp3(rec.recordings / row["file"])
    x = pcm[:, 0].astype(np.float64)
    for hz, seed in ((440.0, 31), (1000.0, 32)):
        seg = _envelope(x, rate, hz)
        expected = levels(seed, seconds)[: len(seg)]
        k = min(len(seg), len(expected)) - 1
        corr = float(np.corrcoef(seg[:k], expected[:k])[0, 1])
        print(f"{kind}: {hz:.0f} Hz party, envelope corr {corr:.3f}")
        assert corr > 0.8, f"{kind}: the {hz:.0f} Hz party's audio is not in the recording"
