"""What the integrity work costs per recording.

Measures, for a typical 5-minute call (8 kHz mono MP3 at the default 32 kbit/s, about 1.2 MB):

* SHA-256 of the finished MP3 (from bytes in memory, as the finaliser does it, and from the file
  as ``verify`` does it: warm page cache);
* one ledger append with its commit (SQLite, ``synchronous=FULL``: an fsync'd transaction);
  a recording makes two (``recording.started``, ``recording.finished``);
* ``verify`` of a whole store, divided by the number of recordings (hash every file, check
  every sidecar, walk the tree, walk the whole ledger chain);
* optional AES-256-GCM encryption at rest of the same file (encrypt and decrypt).

Run: ``python bench/bench_integrity.py [--recordings 100] [--seconds 300]``. Prints a table and
the per-recording total; nothing is kept (temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from siprec_recorder.compliance.crypto import EncryptionKey, decrypt_bytes, encrypt_bytes  # noqa: E402
from siprec_recorder.storage.db import Database, default_sqlite_url  # noqa: E402
from siprec_recorder.storage.files import FileLayout  # noqa: E402
from siprec_recorder.storage.index import FinishedRecording, NewRecording, SqlIndex  # noqa: E402
from siprec_recorder.storage.integrity import sha256_file, verify  # noqa: E402
from siprec_recorder.storage.ledger import append_event, verify_chain  # noqa: E402
from siprec_recorder.storage.mp3 import encode_mp3  # noqa: E402


def speechlike_pcm(seconds: float, rate: int = 8000, seed: int = 7) -> np.ndarray:
    """Noise shaped by a syllable-rate envelope (MP3 size depends little on content at CBR)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    noise = rng.normal(0, 3000, n)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / rate)
    return np.clip(noise * env, -32768, 32767).astype(np.int16).reshape(-1, 1)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


async def atimed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()  # type: ignore[misc]
        out.append(time.perf_counter() - t0)
    return out


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:8.2f} ms   max {max(values) * 1e3:8.2f} ms"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=100, help="store size for verify")
    ap.add_argument("--seconds", type=float, default=300.0, help="call length")
    ap.add_argument("--appends", type=int, default=200, help="ledger appends to time")
    args = ap.parse_args()

    mp3 = encode_mp3(speechlike_pcm(args.seconds), 8000, 32)
    print(
        f"typical recording: {args.seconds:.0f} s, 8 kHz mono, 32 kbit/s MP3 = {len(mp3):,} bytes"
    )
    print()
    results: dict[str, float] = {}

    sha_mem = timed(lambda: hashlib.sha256(mp3).hexdigest(), 50)
    print(f"sha256 of the MP3 in memory (finaliser)     {ms(sha_mem)}")
    results["sha256"] = statistics.median(sha_mem)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "recordings"
        root.mkdir()
        f = Path(tmp) / "one.mp3"
        f.write_bytes(mp3)
        sha_file = timed(lambda: sha256_file(f), 50)
        print(f"sha256 of the MP3 file (verify, warm cache) {ms(sha_file)}")

        db = Database(default_sqlite_url(root))
        await db.open()
        try:

            async def one_append() -> None:
                async with db.session() as s:
                    await append_event(
                        s,
                        actor="bench",
                        action="recording.finished",
                        subject="0" * 32,
                        details={"sha256": "a" * 64, "file": "x/y.mp3", "size_bytes": len(mp3)},
                    )
                    await s.commit()

            appends = await atimed(one_append, args.appends)
            print(f"ledger append + commit (fsync'd)            {ms(appends)}")

            # The SRS appends inside the transaction that changes the row, which commits
            # anyway: the marginal cost is the same transaction with and without the append.
            from sqlalchemy import text

            async with db.session() as s:
                await s.execute(
                    text(
                        "INSERT INTO recordings (id, call_id, state, start, direction, srtp, "
                        "beep, legal_hold, created_at) VALUES ('b', 'b', 'recording', "
                        "'2026-11-01 08:00:00', 'out', 0, 0, 0, '2026-11-01 08:00:00')"
                    )
                )
                await s.commit()

            async def row_change(with_ledger: bool) -> None:
                async with db.session() as s:
                    await s.execute(
                        text("UPDATE recordings SET reason = :r WHERE id = 'b'"),
                        {"r": str(time.perf_counter())},
                    )
                    if with_ledger:
                        await append_event(
                            s,
                            actor="bench",
                            action="recording.finished",
                            subject="b",
                            details={"sha256": "a" * 64, "file": "x/y.mp3"},
                        )
                    await s.commit()

            plain = await atimed(lambda: row_change(False), args.appends)
            audited = await atimed(lambda: row_change(True), args.appends)
            marginal = statistics.median(audited) - statistics.median(plain)
            print(f"row change + commit, no ledger              {ms(plain)}")
            print(f"row change + ledger append + commit         {ms(audited)}")
            print(f"  marginal cost of one ledger append        {marginal * 1e3:8.2f} ms")
            results["append"] = max(marginal, 0.0)
            async with db.session() as s:
                await s.execute(text("DELETE FROM recordings WHERE id = 'b'"))
                await s.commit()

            # A store of N recordings made as the SRS makes them (two ledger events each).
            index = SqlIndex(db)
            layout = FileLayout(root)
            t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
            for i in range(args.recordings):
                start = t0 + timedelta(minutes=6 * i)
                rec_id = await index.create_recording(
                    NewRecording(call_id=f"b{i}", start=start, recorded_number="+32470000001")
                )
                rel = layout.relative_path("+32470000001", start, "out", "+3222", rec_id)
                sha, size = layout.write_atomic(rel, mp3[:-1] + bytes([i % 256]))
                side = layout.write_sidecar(rel, {"id": rec_id, "sha256": sha})
                await index.finish_recording(
                    rec_id,
                    FinishedRecording(
                        end=start + timedelta(seconds=args.seconds),
                        duration_s=args.seconds,
                        file=rel,
                        sidecar=side,
                        sha256=sha,
                        size_bytes=size,
                    ),
                )
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                problems = await verify(db, layout)
                runs.append(time.perf_counter() - t)
                assert problems == [], problems
            per = statistics.median(runs) / args.recordings
            async with db.session() as s:
                t = time.perf_counter()
                assert await verify_chain(s) == []
                chain_s = time.perf_counter() - t
            async with db.session() as s:
                from sqlalchemy import func, select

                from siprec_recorder.storage.models import LedgerEntry

                entries = int(await s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
            print(
                f"verify, whole store of {args.recordings} recordings     "
                f"median {statistics.median(runs):8.3f} s  = {per * 1e3:.2f} ms per recording"
            )
            print(
                f"  of which the ledger chain ({entries} entries)  "
                f"{chain_s * 1e3:8.2f} ms  = {chain_s / entries * 1e6:.1f} us per entry"
            )
            results["verify"] = per
        finally:
            await db.close()

    key = EncryptionKey.generate()
    enc = timed(lambda: encrypt_bytes(mp3, key), 30)
    blob, _ = encrypt_bytes(mp3, key)
    dec = timed(lambda: decrypt_bytes(blob, key), 30)
    print(f"AES-256-GCM encrypt (optional)              {ms(enc)}")
    print(f"AES-256-GCM decrypt (per authorised read)   {ms(dec)}")

    write_path = results["sha256"] + 2 * results["append"]
    print()
    print(
        f"per recording, when it is written: sha256 + 2 ledger appends (marginal) = "
        f"{write_path * 1e3:.2f} ms"
        f" ({write_path / args.seconds * 1e6:.1f} us per call-second)"
    )
    print(f"per recording, each time verify runs: {results['verify'] * 1e3:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
