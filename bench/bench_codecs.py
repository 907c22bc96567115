"""Codec benchmark: recorder CPU per call-second for PCMA, G.722, AMR-WB and SRTP-PCMA.

    python bench/bench_codecs.py [--calls 20] [--duration 20] [--kinds PCMA,G722,AMR-WB,SRTP-PCMA]

Every kind is measured the same way in one run, so the figures can be read side by side:
a fresh recorder process (``siprec_recorder.testing.RecorderProcess``, the shipped program
on loopback), N concurrent calls of D seconds from the project's replay tool, two legs each
in that codec (20 ms packets), then a wait until every call's MP3 is on disk. The figure is
the recorder's process-tree CPU (receive, spool, decode, render, MP3 encode, index:
everything) divided by the call-seconds offered; it is split at the first BYE into
"live" (setup and media while every call is up) and "final" (the rest: finalisation,
plus the last fraction of a second of the calls that started later, at most the ramp).

Payloads, one speech-like signal per side (``speech_like`` of the codec integration test)
encoded once per kind and shared by every call (each call has its own SSRCs):

* PCMA: the project's own G.711 encoder (``siprec_recorder.rtp.codecs.alaw_encode``);
* G.722: PyAV's ``g722`` encoder, 16 kHz audio, payload type 9;
* AMR-WB: VisualOn's encoder (Debian ``libvo-amrwbenc0``) through the codec integration
  test's ctypes wrapper, 23.85 kbit/s, one frame a packet, RFC 4867 octet-aligned
  (``a=fmtp:97 octet-align=1`` in the offer);
* SRTP-PCMA: the PCMA calls offered as RTP/SAVP with the replay tool's own random
  AES_CM_128_HMAC_SHA1_80 key, each packet protected by the sender.

G.722 and AMR-WB calls are recorded as 16 kHz MP3s, PCMA as 8 kHz: the encoder's share
differs too, which is part of what a wideband call costs. Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siprec_recorder.replay.calls import CapturedCall, Leg, RtpRecord
from siprec_recorder.replay.src import ReplayResult, SrcOptions, replay_call
from siprec_recorder.rtp.codecs import alaw_encode
from siprec_recorder.testing import RecorderProcess, process_tree_cpu, write_config

# The AMR-WB encoder wrapper, RFC 4867 packing and test signal live in the codec
# integration test; reuse them rather than keep a second copy (needs the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.test_codecs import (  # noqa: E402
    av_encode,
    encode_amr_wb,
    pack_octet_aligned,
    speech_like,
)

PTIME = 0.02
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


@dataclass(frozen=True, slots=True)
class Kind:
    """One media kind: how a side's audio becomes RTP payloads and how it is offered."""

    name: str
    payload_type: int
    rtpmap: str
    fmtp: str | None
    rate: int  # audio sample rate fed to the encoder
    ts_step: int  # RTP timestamp ticks per 20 ms packet
    encode: Callable[[np.ndarray], list[bytes]]  # one side's PCM -> one payload a packet
    srtp: bool = False


def encode_pcma(pcm: np.ndarray) -> list[bytes]:
    coded = alaw_encode(pcm)
    return [coded[i : i + 160] for i in range(0, len(coded) - 159, 160)]


def encode_g722(pcm: np.ndarray) -> list[bytes]:
    out = av_encode("g722", pcm, 16000, 320)
    # FFmpeg may regroup the stream; the RTP payload is 160 octets per 20 ms.
    stream = b"".join(out)
    return [stream[i : i + 160] for i in range(0, len(stream) - 159, 160)]


def encode_amrwb(pcm: np.ndarray) -> list[bytes]:
    return [pack_octet_aligned([f]) for f in encode_amr_wb(pcm, mode=8)]  # 23.85 kbit/s


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("PCMA", 8, "PCMA/8000", None, 8000, 160, encode_pcma),
        Kind("G722", 9, "G722/8000", None, 16000, 160, encode_g722),
        Kind("AMR-WB", 97, "AMR-WB/16000", "octet-align=1", 16000, 320, encode_amrwb),
        Kind("SRTP-PCMA", 8, "PCMA/8000", None, 8000, 160, encode_pcma, srtp=True),
    )
}


def side_payloads(kind: Kind, duration: float) -> list[list[bytes]]:
    """Caller's and callee's payloads: two different speech-like signals."""
    sides = []
    for seed in (4867, 7866):
        payloads = kind.encode(speech_like(duration, kind.rate, seed=seed))
        if len(payloads) < int(duration / PTIME):
            raise RuntimeError(f"{kind.name}: {len(payloads)} payloads for {duration} s")
        sides.append(payloads[: int(duration / PTIME)])
    return sides


def make_call(kind: Kind, sides: list[list[bytes]], index: int) -> CapturedCall:
    legs = []
    for li, (role, payloads) in enumerate(zip(("caller", "callee"), sides, strict=True)):
        packets = tuple(
            RtpRecord(
                time=k * PTIME,
                payload_type=kind.payload_type,
                marker=k == 0,
                sequence_number=(1000 * li + k) & 0xFFFF,
                timestamp=(kind.ts_step * k + 12345 * li) & 0xFFFFFFFF,
                ssrc=0x10000 * (index + 1) + li,
                payload=p,
            )
            for k, p in enumerate(payloads)
        )
        aor = f"sip:+3247{index:07d}@example.com" if role == "caller" else "tel:+3222000000"
        fmtp = {kind.payload_type: kind.fmtp} if kind.fmtp else {}
        legs.append(Leg(role, aor, None, None, packets, {kind.payload_type: kind.rtpmap}, fmtp))
    end = len(sides[0]) * PTIME
    return CapturedCall(None, legs[0].aor, legs[1].aor, tuple(legs), 0.0, end)


class CpuSampler:
    """Samples the recorder's process-tree CPU every ``interval`` (wall clock stamps)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.times.append(time.time())
        self.cpu.append(process_tree_cpu(self.pid)[0])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def at(self, t: float) -> float:
        """CPU seconds at wall time ``t`` (the last sample at or before it)."""
        i = bisect.bisect_right(self.times, t) - 1
        return self.cpu[max(0, i)]


async def drive(calls: list[CapturedCall], options: SrcOptions, ramp: float) -> list[ReplayResult]:
    async def one(i: int) -> ReplayResult:
        await asyncio.sleep(ramp * i / max(1, len(calls)))
        return await replay_call(calls[i], options)

    return list(await asyncio.gather(*(one(i) for i in range(len(calls)))))


@dataclass
class Outcome:
    kind: str
    offered: int
    completed: int
    recorded: int
    sent: int
    received: int
    lost: int
    mp3_rate: str
    statuses: str
    cpu: float
    live: float
    final: float
    idle_ms_per_s: float
    bye_to_last_mp3: float | None


def run_kind(kind: Kind, args: argparse.Namespace, root: Path) -> Outcome:
    sides = side_payloads(kind, args.duration)
    calls = [make_call(kind, sides, i) for i in range(args.calls)]
    # Keep the prepared packets out of the generator's garbage collector (see bench_load).
    gc.collect()
    gc.freeze()
    work = root / kind.name
    work.mkdir()
    base = random.randrange(20000, 60000 - 8 * args.calls - 200, 2)
    cfg = write_config(
        work,
        recording={"channels": "mono", "workers": 1},
        sip={"max_sessions": max(2000, args.calls * 2)},
        rtp={"port_min": base, "port_max": base + 8 * args.calls + 100},
        log={"level": "INFO"},
    )
    rec = RecorderProcess(workdir=work, config_path=cfg, recordings=work / "recordings")
    rec.start()
    try:
        assert rec.proc is not None
        pid = rec.proc.pid
        idle0, _ = process_tree_cpu(pid)
        time.sleep(1.0)
        idle = process_tree_cpu(pid)[0] - idle0
        sampler = CpuSampler(pid)
        sampler.start()
        options = SrcOptions(to=rec.listeners["udp"], srtp=kind.srtp, srtp_suite=SRTP_SUITE)
        results = asyncio.run(drive(calls, options, args.ramp))
        answered = sum(1 for r in results if r.status == 200)
        rows = rec.wait_for_recordings(answered, timeout=60 + 2 * args.calls)
        sampler.stop()
    finally:
        rec.stop()
        gc.unfreeze()

    cpu0, cpu_end = sampler.cpu[0], sampler.cpu[-1]
    byes = [r.bye_sent_at for r in results if r.bye_sent_at]
    split = sampler.at(min(byes)) if byes else cpu_end
    mtimes = [(rec.recordings / row["file"]).stat().st_mtime for row in rows if row.get("file")]
    streams = [s for row in rows for s in row["streams"]]
    statuses: dict[str, int] = {}
    for s in streams:
        key = f"{s.get('codec')}:{s.get('status')}"
        statuses[key] = statuses.get(key, 0) + 1
    return Outcome(
        kind=kind.name,
        offered=args.calls,
        completed=sum(1 for r in results if r.ok),
        recorded=sum(1 for row in rows if row["state"] == "complete"),
        sent=sum(sum(r.packets_sent.values()) for r in results),
        received=sum(s["packets_received"] for s in streams),
        lost=sum(s["packets_lost"] for s in streams),
        mp3_rate="/".join(sorted({f"{row['sample_rate'] // 1000}k" for row in rows})) or "-",
        statuses=", ".join(f"{n}x {k}" for k, n in sorted(statuses.items())),
        cpu=cpu_end - cpu0,
        live=split - cpu0,
        final=cpu_end - split,
        idle_ms_per_s=1000 * idle,
        bye_to_last_mp3=max(mtimes) - max(byes) if mtimes and byes else None,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20, help="concurrent calls per kind")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per call")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    ap.add_argument("--ramp", type=float, default=0.5, help="seconds over which calls start")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        ap.error(f"unknown kind(s) {unknown}; choose from {', '.join(KINDS)}")
    if args.calls * args.duration > 20_000:
        print("refusing: more than 20,000 call-seconds per kind", file=sys.stderr)
        return 2

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    call_seconds = args.calls * args.duration
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
        for name in kinds:
            outcomes.append(run_kind(KINDS[name], args, Path(tmp)))
            o = outcomes[-1]
            print(
                f"  {name}: {o.completed}/{o.offered} calls, {o.cpu:.2f} s CPU "
                f"({time.monotonic() - t0:.0f} s elapsed)",
                flush=True,
            )

    print(
        f"\nrecorder CPU per call-second, {args.calls} concurrent calls x {args.duration:g} s "
        f"= {call_seconds:g} call-seconds per kind, two legs a call, 20 ms packets, UDP, "
        f"mono MP3 (32 kbit/s, LAME q7), {os.cpu_count()} CPUs"
    )
    head = (
        f"{'kind':<10} {'calls ok/rec/offered':>20} {'pkts sent':>9} {'lost':>5} {'MP3':>4} "
        f"{'CPU s':>6} {'CPU s/call-s':>12} {'ms/call-s':>9} {'live':>6} {'final':>6} "
        f"{'x PCMA':>6} {'BYE->MP3':>8}"
    )
    print(head)
    print("-" * len(head))
    pcma = next((o for o in outcomes if o.kind == "PCMA"), None)
    for o in outcomes:
        per_cs = o.cpu / call_seconds
        ratio = f"{o.cpu / pcma.cpu:.2f}" if pcma and pcma.cpu > 0 else "-"
        lag = f"{o.bye_to_last_mp3:.2f} s" if o.bye_to_last_mp3 is not None else "-"
        print(
            f"{o.kind:<10} {f'{o.completed}/{o.recorded}/{o.offered}':>20} {o.sent:>9} "
            f"{o.lost:>5} {o.mp3_rate:>4} {o.cpu:>6.2f} {per_cs:>12.5f} {1000 * per_cs:>9.3f} "
            f"{1000 * o.live / call_seconds:>6.3f} {1000 * o.final / call_seconds:>6.3f} "
            f"{ratio:>6} {lag:>8}"
        )
    print(
        "live = CPU from the first INVITE to the first BYE, final = the rest until every MP3 "
        "is on disk (both in ms per call-second); x PCMA = total CPU / PCMA's."
    )
    for o in outcomes:
        print(
            f"  {o.kind}: streams {o.statuses}; packets received {o.received}; "
            f"idle recorder {o.idle_ms_per_s:.0f} ms CPU/s (10 ms clock ticks)"
        )
    ok = all(o.completed == o.offered == o.recorded and o.lost == 0 for o in outcomes)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
