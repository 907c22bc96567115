"""Load benchmark: N concurrent SIPREC calls of D seconds against a real recorder process.

    python bench/bench_load.py --calls 100 --duration 30 [--transport udp] [--channels mono]
                               [--long-call 300]

It starts the recorder (``siprec_recorder.testing.RecorderProcess``: the shipped program on
loopback), drives N concurrent calls with the project's replay tool (two PCMA legs of 20 ms
packets each, audio of tone bursts so the encoder has real work), waits for every MP3, and
prints: calls offered / recorded, packets sent / received / lost per leg, recorder CPU
seconds per call-second (the recorder process and its finaliser workers), peak RSS, call
setup latency (median, p99) and the time from BYE to the finished MP3.

In the same run it measures the floor on this machine: LAME encoding of the same amount of
audio alone, and a bare asyncio UDP receive loop at the same packet rate; it prints the
recorder's cost as a ratio to that floor. Loopback only; bounded in time; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from siprec_recorder.replay.calls import CapturedCall, Leg, RtpRecord
from siprec_recorder.replay.src import SrcOptions, replay_call
from siprec_recorder.testing import RecorderProcess, process_cpu, process_tree_cpu, write_config

PTIME = 0.02
RATE = 8000


@functools.lru_cache(maxsize=1)
def _alaw_table() -> np.ndarray:
    """Linear 16-bit -> A-law, built from the G.711 segment rule (vectorised)."""
    x = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(x >= 0, 0x80, 0x00)
    mag = np.minimum(np.abs(x), 32767) >> 3
    seg = np.zeros_like(mag)
    for i, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        seg = np.where((mag > end) & (seg == i), i + 1, seg)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    code = (sign | (np.minimum(seg, 7) << 4) | mant) ^ 0x55
    return code.astype(np.uint8)


def synthetic_call(duration: float, index: int) -> CapturedCall:
    """Two PCMA legs of tone bursts (speech-like on/off envelope), 20 ms packets."""
    table = _alaw_table()
    n = int(duration / PTIME)
    legs = []
    for li, (role, freq) in enumerate((("caller", 440.0), ("callee", 660.0))):
        t = np.arange(n * 160) / RATE
        envelope = (np.sin(2 * math.pi * 0.5 * t + li * math.pi) > 0).astype(np.float64)
        pcm = (8000 * envelope * np.sin(2 * math.pi * freq * t)).astype(np.int32)
        alaw = table[pcm + 32768].tobytes()
        packets = tuple(
            RtpRecord(
                time=k * PTIME,
                payload_type=8,
                marker=k == 0,
                sequence_number=(1000 * li + k) & 0xFFFF,
                timestamp=(160 * k + 12345 * li) & 0xFFFFFFFF,
                ssrc=0x10000 * (index + 1) + li,
                payload=alaw[160 * k : 160 * (k + 1)],
            )
            for k in range(n)
        )
        aor = f"sip:+3247{index:07d}@example.com" if role == "caller" else "tel:+3222000000"
        legs.append(Leg(role, aor, None, None, packets, {8: "PCMA/8000"}, {}))
    return CapturedCall(
        call_id=None,
        caller=legs[0].aor,
        callee=legs[1].aor,
        legs=tuple(legs),
        start=0.0,
        end=duration,
    )


def floor_lame(call_seconds: float) -> float:
    """CPU seconds LAME needs to encode ``call_seconds`` of the benchmark's own audio.

    The same audio the recorder encodes: the two legs of :func:`synthetic_call` through
    A-law and back, mixed to 8 kHz mono, at the recorder's default settings (32 kbps,
    LAME quality 7), 10 seconds per ``encode`` call.
    """
    import lameenc

    from siprec_recorder.rtp.codecs.g711 import ALAW_TABLE

    call = synthetic_call(10.0, 0)
    mixed = np.zeros(int(10.0 * RATE), dtype=np.int32)
    for leg in call.legs:
        alaw = np.frombuffer(b"".join(p.payload for p in leg.packets), dtype=np.uint8)
        mixed[: len(alaw)] += ALAW_TABLE[alaw]
    pcm = np.clip(mixed, -32768, 32767).astype(np.int16).tobytes()
    enc = lameenc.Encoder()
    enc.set_bit_rate(32)
    enc.set_in_sample_rate(RATE)
    enc.set_out_sample_rate(RATE)
    enc.set_channels(1)
    enc.set_quality(7)
    reps = max(1, int(call_seconds / 10))
    t0 = time.process_time()
    for _ in range(reps):
        enc.encode(pcm)
    enc.flush()
    return (time.process_time() - t0) * call_seconds / (reps * 10)


async def _floor_udp(packets: int, rate: float) -> float:
    """CPU seconds a bare asyncio receiver spends on ``packets`` datagrams of 172 bytes.

    The sender is another process, so the receiver's CPU is this process's alone (a sender
    thread here would share the GIL with it and inflate the floor at high rates).
    """
    import multiprocessing

    loop = asyncio.get_running_loop()
    got = 0
    done = asyncio.Event()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            nonlocal got
            got += 1
            if got >= packets:
                done.set()

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    port = transport.get_extra_info("sockname")[1]
    sender = multiprocessing.get_context("spawn").Process(
        target=_send_udp, args=(port, packets, rate), daemon=True
    )
    t0 = time.process_time()
    sender.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=packets / rate + 10)
    except TimeoutError:
        pass  # some datagrams were dropped: the CPU spent so far is still the floor's
    cpu = time.process_time() - t0
    await asyncio.to_thread(sender.join, 5)
    transport.close()
    return cpu * packets / max(1, got)


def _send_udp(port: int, packets: int, rate: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = bytes(172)
    start = time.monotonic()
    for i in range(packets):
        s.sendto(payload, ("127.0.0.1", port))
        if i % 200 == 0:
            lag = start + i / rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    s.close()


async def drive(
    rec: RecorderProcess,
    calls: int,
    duration: float,
    transport: str,
    ramp: float,
    long_call: float = 0.0,
) -> list:
    target = rec.listeners[transport]
    options = SrcOptions(to=target, transport=transport)
    # Built before the clock starts: the load generator must not stall its own loop.
    prepared = [synthetic_call(duration, i) for i in range(calls)]
    if long_call:
        # One more call, started with the first ones and ended ``long_call - duration``
        # seconds after the last: its BYE -> MP3 time is that of a long call on a busy box.
        prepared.append(synthetic_call(long_call, calls))
        calls += 1
    # Millions of prepared packets would make every full garbage collection of the
    # generator a pause of seconds (late INVITEs, late packets): keep them out of the GC.
    gc.collect()
    gc.freeze()

    async def one(i: int) -> object:
        if not (long_call and i == calls - 1):
            await asyncio.sleep(ramp * i / max(1, calls))
        return await replay_call(prepared[i], options)

    return list(await asyncio.gather(*(one(i) for i in range(calls))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--channels", choices=["mono", "stereo"], default="mono")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds over which calls start")
    ap.add_argument(
        "--long-call",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="add one call of this length (e.g. 300) and report its BYE -> MP3 time apart",
    )
    args = ap.parse_args()
    if args.long_call and args.long_call < args.duration:
        print("--long-call must be at least --duration", file=sys.stderr)
        return 2
    if args.calls * args.duration + args.long_call > 50_000:
        print("refusing: more than 50,000 call-seconds in one run", file=sys.stderr)
        return 2

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        cfg = write_config(
            work,
            recording={"channels": args.channels, "workers": args.workers},
            sip={"max_sessions": max(2000, args.calls * 2)},
            rtp={"port_min": 20000, "port_max": 20000 + 8 * args.calls + 100},
            log={"level": "INFO"},
        )
        rec = RecorderProcess(workdir=work, config_path=cfg, recordings=work / "recordings")
        rec.start()
        try:
            assert rec.proc is not None
            pid = rec.proc.pid
            before = process_cpu(pid)  # by process: the recorder and its finalisers
            t0 = time.monotonic()
            results = asyncio.run(
                drive(rec, args.calls, args.duration, args.transport, args.ramp, args.long_call)
            )
            rows = rec.wait_for_recordings(
                sum(1 for r in results if r.status == 200), timeout=120 + args.calls
            )
            wall = time.monotonic() - t0
            after = process_cpu(pid)
            _, rss_kib = process_tree_cpu(pid)
        finally:
            rec.stop()

        long_result = results.pop() if args.long_call else None
        long_lag = None
        if long_result is not None and long_result.bye_sent_at:
            for row in rows:
                if row["call_id"] == long_result.call_id and row.get("file"):
                    mtime = (rec.recordings / row["file"]).stat().st_mtime
                    long_lag = mtime - long_result.bye_sent_at
            rows = [row for row in rows if row["call_id"] != long_result.call_id]
        ok = [r for r in results if r.ok]
        call_seconds = args.calls * args.duration + args.long_call  # the CPU covers both
        recorder_cpu = sum(after.values()) - sum(before.values())
        sent = sum(sum(r.packets_sent.values()) for r in results)
        received = sum(s["packets_received"] for row in rows for s in row["streams"])
        lost = sum(s["packets_lost"] for row in rows for s in row["streams"])
        setups = sorted(r.setup_s for r in results if r.setup_s is not None)
        finish_lags = []
        by_call = {r.call_id: r for r in results}
        for row in rows:
            r = by_call.get(row["call_id"])
            if r is not None and r.bye_sent_at and row.get("file"):
                mtime = (rec.recordings / row["file"]).stat().st_mtime
                finish_lags.append(mtime - r.bye_sent_at)

        pps = args.calls * 2 / PTIME
        lame = floor_lame(call_seconds)
        udp = asyncio.run(_floor_udp(int(pps * min(args.duration, 10)), pps))
        udp_per_cs = udp / (args.calls * min(args.duration, 10))
        floor_per_cs = lame / call_seconds + udp_per_cs
        cost_per_cs = recorder_cpu / call_seconds

        print(
            f"calls offered / answered 200 / completed / recorded: {args.calls} / "
            f"{sum(1 for r in results if r.status == 200)} / {len(ok)} / "
            f"{sum(1 for row in rows if row['state'] == 'complete')}"
        )
        print(
            f"packets sent {sent}, received {received}, lost {lost} "
            f"({100 * (sent - received) / max(1, sent):.4f} % not received)"
        )
        print(
            f"wall time {wall:.1f} s for {call_seconds:.0f} call-seconds ({args.transport}, "
            f"{args.channels}, {args.workers} finaliser worker(s))"
        )
        print(f"recorder CPU: {recorder_cpu:.2f} s = {1000 * cost_per_cs:.3f} ms per call-second")
        main_cpu = after.get(pid, 0.0) - before.get(pid, 0.0)
        print(
            f"  of which the recorder's own process {1000 * main_cpu / call_seconds:.3f} ms, "
            f"its children (finalisers) {1000 * (recorder_cpu - main_cpu) / call_seconds:.3f} ms "
            "per call-second"
        )
        print(
            f"recorder peak RSS (process tree, sum of VmHWM): {rss_kib / 1024:.0f} MiB "
            f"= {rss_kib / max(1, args.calls):.0f} KiB per call"
        )
        if setups:
            p99 = setups[min(len(setups) - 1, int(0.99 * len(setups)))]
            print(
                f"call setup (INVITE -> 200): median {1000 * statistics.median(setups):.1f} ms, "
                f"p99 {1000 * p99:.1f} ms"
            )
        if finish_lags:
            print(
                f"BYE -> finished MP3: median {statistics.median(finish_lags):.2f} s, "
                f"max {max(finish_lags):.2f} s"
            )
        if long_result is not None:
            print(
                f"long call ({args.long_call:.0f} s): "
                + (
                    f"BYE -> finished MP3 {long_lag:.2f} s"
                    if long_lag is not None
                    else f"not recorded (status {long_result.status})"
                )
            )
        print(
            f"floor: LAME alone {1000 * lame / call_seconds:.3f} ms per call-second, "
            f"bare UDP receive {1000 * udp_per_cs:.3f} ms per call-second "
            f"(at {pps:.0f} packets/s)"
        )
        print(f"ratio recorder / floor: {cost_per_cs / floor_per_cs:.2f}x")
    return 0 if len(ok) == args.calls else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
