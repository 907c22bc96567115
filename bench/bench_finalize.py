"""Finaliser benchmark: ``finalize_spool`` of spooled calls next to LAME alone on their audio.

Run: ``python bench/bench_finalize.py [--calls 20] [--seconds 60] [--profile]``.

It spools ``--calls`` two-leg PCMA calls (tone bursts with a little noise; packets 20 ms
apart with up to 4 ms of one-sided jitter, the second leg starting 50 ms after the first)
into a temporary folder, then finalises each one as the recorder's worker does (read the
spool, decode, place, mix, encode MP3 with its Info tag, write the MP3 and its sidecar with
fsync) and, in the same run, encodes the same mixed audio with LAME alone at the same
settings. It prints the CPU time of each per call-second and their ratio: what the
finaliser adds to the encoding that cannot be avoided. ``--profile`` adds the functions
that took the most time (``cProfile``).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from siprec_recorder.rtp.codecs import alaw_encode
from siprec_recorder.rtp.codecs.g711 import ALAW_TABLE
from siprec_recorder.rtp.spoolfmt import SpoolRecord
from siprec_recorder.siprec.finalize import finalize_spool, warm_up
from siprec_recorder.storage.mp3 import encode_mp3
from siprec_recorder.storage.spool import SpoolStore

START = 1_780_000_000.0
RATE = 8000
BITRATE = 32
QUALITY = 7


def leg_audio(seconds: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    bursts = np.sin(2 * np.pi * freq * t) * 6000 * (np.sin(2 * np.pi * 0.3 * t) > 0)
    return np.clip(bursts + rng.normal(0, 300, len(t)), -32768, 32767).astype(np.int16)


def leg_records(coded: bytes, ssrc: int, t0: float, rng: np.random.Generator) -> bytes:
    n = len(coded) // 160
    jitter = rng.uniform(0.0, 0.004, n)
    return b"".join(
        SpoolRecord(
            START + t0 + 0.02 * i + float(jitter[i]),
            70_000 + i,
            2**32 + 160 * i,
            8,
            i == 0,
            ssrc,
            coded[160 * i : 160 * (i + 1)],
        ).encode()
        for i in range(n)
    )


def manifest(rec_id: str) -> dict[str, Any]:
    return {
        "rec_id": rec_id,
        "call_id": f"{rec_id}@bench",
        "started_at": START,
        "recorded_number": "+32470000001",
        "other_number": "+32470000002",
        "direction": "out",
        "channels": "mono",
        "bitrate_kbps": BITRATE,
        "mp3_quality": QUALITY,
        "key_id": None,
        "legs": [
            {"label": label, "port": 40_000 + 2 * k, "rtpmaps": {"8": ["PCMA", 8000, None]}}
            for k, label in enumerate(("a", "b"))
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    coded_a = alaw_encode(leg_audio(args.seconds, 440.0, rng))
    coded_b = alaw_encode(leg_audio(args.seconds, 700.0, rng))
    spooled = {
        "a": leg_records(coded_a, 1, 0.10, rng),
        "b": leg_records(coded_b, 2, 0.15, rng),
    }
    # LAME's input: what the finaliser mixes (both legs through A-law, b 50 ms later).
    a = ALAW_TABLE[np.frombuffer(coded_a, np.uint8)].astype(np.int32)
    b = ALAW_TABLE[np.frombuffer(coded_b, np.uint8)].astype(np.int32)
    shift = int(0.05 * RATE)
    mixed = np.zeros(len(a) + shift, np.int32)
    mixed[: len(a)] += a
    mixed[shift:] += b
    pcm = np.clip(mixed, -32768, 32767).astype(np.int16)[:, None]

    warm_up()
    root = Path(tempfile.mkdtemp(prefix="bench-finalize-"))
    try:
        store = SpoolStore(root)
        ids = []
        for i in range(args.calls):
            rec_id = f"bench{i:05d}"
            session = store.open_session(rec_id, manifest(rec_id))
            for label, data in spooled.items():
                session.append(label, data)
            session.flush()
            ids.append(rec_id)
        profiler = cProfile.Profile()
        finalise = 0.0
        lame = 0.0
        for rec_id in ids:  # alternate, so that both see the same machine
            t = time.process_time()
            if args.profile:
                profiler.enable()
            finalize_spool(
                str(root), rec_id, str(root / "recordings"), "complete", None, None, None, None
            )
            if args.profile:
                profiler.disable()
            finalise += time.process_time() - t
            t = time.process_time()
            encode_mp3(pcm, RATE, BITRATE, quality=QUALITY)
            lame += time.process_time() - t
    finally:
        shutil.rmtree(root, ignore_errors=True)

    call_seconds = args.calls * len(pcm) / RATE
    per_f = finalise / call_seconds * 1000
    per_l = lame / call_seconds * 1000
    print(f"{args.calls} calls of {args.seconds:.0f} s, two PCMA legs, mono MP3 {BITRATE} kbit/s")
    print(
        f"finalize_spool: {finalise / args.calls * 1000:.1f} ms CPU per call = "
        f"{per_f:.3f} ms per call-second"
    )
    print(
        f"LAME alone on the same audio: {lame / args.calls * 1000:.1f} ms CPU per call = "
        f"{per_l:.3f} ms per call-second"
    )
    print(
        f"ratio finaliser / LAME: {per_f / per_l:.2f}x "
        f"(the finaliser's own work: {per_f - per_l:.3f} ms per call-second)"
    )
    if args.profile:
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
