"""Media-path benchmark: per-packet receive cost, decode and render cost per call-second.

Run: ``python bench/bench_media.py [--seconds 60]``. Prints one table; every figure is
measured in this run on this machine as CPU time of this process (``time.process_time``),
so other load on the machine inflates the figures less than wall-clock would.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable
from functools import partial

import av
import numpy as np
import pylibsrtp

from siprec_recorder.rtp.codecs import alaw_encode, get_decoder
from siprec_recorder.rtp.leg import LegReceiver
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.render import LegMedia, render_call
from siprec_recorder.rtp.spoolfmt import iter_records
from siprec_recorder.rtp.srtp import SUPPORTED_SUITES, make_answer_crypto, parse_key_params

PTIME = 0.02


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def pcma_packets(seconds: float, ssrc: int = 1) -> list[bytes]:
    coded = alaw_encode(tone(seconds, 8000))
    return [
        RtpPacket(
            8,
            i & 0xFFFF,
            (i * 160) & 0xFFFFFFFF,
            ssrc,
            coded[i * 160 : (i + 1) * 160],
        ).serialize()
        for i in range(len(coded) // 160)
    ]


def best_of(n: int, fn: Callable[[], object]) -> float:
    """The least CPU time of ``n`` runs of ``fn``."""
    times = []
    for _ in range(n):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def render_legs(legs: list[tuple[str, bytes]], channels: str, *, per_record: bool) -> float:
    """Render spooled PCMA legs from their bytes; returns the call's duration in seconds."""
    media = [
        LegMedia(label, list(iter_records(data)) if per_record else data, {8: ("PCMA", 8000, None)})
        for label, data in legs
    ]
    return render_call(media, channels=channels, session_start=1000.0).duration_s


def time_receive(packets: list[bytes], srtp: tuple[str, str] | None) -> float:
    leg = LegReceiver("b", srtp=srtp, jitter_window=64)
    t = time.process_time()
    for i, p in enumerate(packets):
        leg.receive(p, 1000.0 + i * PTIME)
        if i % 50 == 0:
            leg.take_spool_bytes()
    leg.finish()
    return (time.process_time() - t) / len(packets)


def g722_payloads(seconds: float) -> list[bytes]:
    ctx = av.CodecContext.create("g722", "w")
    ctx.sample_rate = 16000
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.open()
    pcm = tone(seconds, 16000)
    out: list[bytes] = []
    for i in range(0, len(pcm) - 319, 320):
        fr = av.AudioFrame.from_ndarray(
            pcm[i : i + 320].reshape(1, -1), format="s16", layout="mono"
        )
        fr.sample_rate = 16000
        fr.pts = i
        out += [bytes(p) for p in ctx.encode(fr)]
    return out


def amrwb_payloads(seconds: float) -> list[bytes]:
    # No AMR-WB encoder available: random 23.85 kbit/s frames, octet-aligned, one per packet.
    rng = np.random.default_rng(1)
    n = int(seconds / PTIME)
    out = []
    for _ in range(n):
        speech = bytearray(rng.integers(0, 256, 60, dtype=np.uint8).tobytes())
        speech[-1] &= 0xE0
        out.append(bytes([0xF0, 8 << 3 | 0x04]) + bytes(speech))
    return out


def time_decode(
    encoding: str, clock: int, fmtp: str | None, payloads: list[bytes], seconds: float
) -> float:
    dec = get_decoder(encoding, clock, fmtp)
    assert dec is not None, encoding
    t = time.process_time()
    dec.decode_run(payloads)
    return (time.process_time() - t) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="call length to simulate")
    args = ap.parse_args()
    secs = args.seconds

    plain = pcma_packets(secs)
    suite = "AES_CM_128_HMAC_SHA1_80"
    _line, key_params = make_answer_crypto(1, suite)
    tx = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=parse_key_params(suite, key_params),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=SUPPORTED_SUITES[suite][0],
        )
    )
    protected = [tx.protect(p) for p in plain]
    assert base64.b64decode(key_params[7:])

    rows: list[tuple[str, str]] = []
    time_receive(plain[:500], None)  # warm-up
    rows.append(
        (
            "LegReceiver.receive, plain RTP (PCMA 20 ms)",
            f"{time_receive(plain, None) * 1e6:8.2f} us/packet",
        )
    )
    rows.append(
        (
            "LegReceiver.receive, SRTP AES_CM_128_HMAC_SHA1_80",
            f"{time_receive(protected, (suite, key_params)) * 1e6:8.2f} us/packet",
        )
    )

    pcma = [RtpPacket.parse(p).payload for p in plain]
    rows.append(
        (
            "decode PCMA (numpy table)",
            f"{time_decode('PCMA', 8000, None, pcma, secs) * 1e3:8.3f} ms/call-second",
        )
    )
    rows.append(
        (
            "decode G.722 (PyAV)",
            f"{time_decode('G722', 8000, None, g722_payloads(secs), secs) * 1e3:8.3f}"
            " ms/call-second",
        )
    )
    try:
        ms = time_decode("AMR-WB", 16000, "octet-align=1", amrwb_payloads(secs), secs) * 1e3
        rows.append(("decode AMR-WB (PyAV, synthetic frames)", f"{ms:8.3f} ms/call-second"))
    except AssertionError:
        rows.append(("decode AMR-WB", "not decodable here"))

    legs = []
    for label, ssrc, start in (("1", 1, 0.3), ("2", 2, 0.5)):
        leg = LegReceiver(label)
        for i, p in enumerate(pcma_packets(secs, ssrc)):
            leg.receive(p, 1000.0 + start + i * PTIME)
        legs.append((label, leg.finish()))
    for channels in ("mono", "stereo"):
        # The spool bytes as the finaliser hands them (read as columns), against the same
        # bytes made into a SpoolRecord per packet first (as the finaliser did before).
        duration = render_legs(legs, channels, per_record=False)
        columnar = best_of(5, partial(render_legs, legs, channels, per_record=False))
        per_record = best_of(5, partial(render_legs, legs, channels, per_record=True))
        rows.append(
            (
                f"spool parse + render_call, 2 PCMA legs, {channels}",
                f"{columnar / duration * 1e3:8.3f} ms/call-second (columnar) vs"
                f" {per_record / duration * 1e3:.3f} ms (per-record objects)",
            )
        )

    width = max(len(r[0]) for r in rows)
    print(f"media benchmark, {secs:.0f} s call, {len(plain)} packets per leg")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
