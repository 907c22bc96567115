"""What the shared database carries for a cluster: recordings started and finished per second.

``python bench/bench_cluster.py --url postgresql+asyncpg://user:pw@host/db --writers 4``

Each writer process plays one recorder node's index traffic: a ``recording`` row at the start
of a call (with two participants) and its ``complete`` row at the end (two stream rows),
each with its ledger entry, through the same :class:`SqlIndex` (and batch window) ``serve``
uses, ``--concurrency`` calls at a time. After ``--seconds`` it prints the recordings
finished per second across all writers, checks that the ledger's hash chain is intact, and
sets the rate beside one node's sustained rate (``--node-rate``, default 5.6/s: 1,000
concurrent calls of three minutes each). Use a throw-away database: rows are left in it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from datetime import UTC, datetime

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.index import FinishedRecording, NewRecording, SqlIndex
from siprec_recorder.storage.ledger import verify_chain


def _stream(label: str) -> dict[str, object]:
    return {"label": label, "codec": "PCMA", "packets_received": 9000, "packets_lost": 0}


async def _writer(url: str, seconds: float, concurrency: int, node: str) -> int:
    db = Database(url)
    await db.open()
    index = SqlIndex(db)
    done = 0
    stop_at = time.monotonic() + seconds

    async def one_call_after_another() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            rec_id = uuid.uuid4().hex
            now = datetime.now(UTC)
            await index.create_recording(
                NewRecording(
                    id=rec_id,
                    call_id=f"{rec_id}@bench",
                    start=now,
                    recorded_number="+32470000001",
                    other_number="+3222000000",
                    direction="in",
                    node_id=node,
                    participants=[
                        {"aor": "tel:+32470000001", "number": "+32470000001"},
                        {"aor": "tel:+3222000000", "number": "+3222000000"},
                    ],
                    retention_years=5,
                )
            )
            await index.finish_recording(
                rec_id,
                FinishedRecording(
                    end=datetime.now(UTC),
                    duration_s=180.0,
                    file=f"32470000001/{rec_id}.mp3",
                    sha256="0" * 64,
                    size_bytes=720_000,
                    sample_rate=8000,
                    channels=1,
                    streams=[_stream("1"), _stream("2")],
                ),
            )
            done += 1

    await asyncio.gather(*(one_call_after_another() for _ in range(concurrency)))
    await db.close()
    return done


def _run_writer(args: tuple[str, float, int, str]) -> int:
    return asyncio.run(_writer(*args))


async def _check(url: str) -> list[str]:
    db = Database(url)
    await db.open()
    try:
        async with db.session() as s:
            return await verify_chain(s)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("SIPREC_BENCH_DATABASE_URL", ""))
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--node-rate", type=float, default=1000 / 180)
    args = parser.parse_args()
    if not args.url:
        parser.error("--url (or SIPREC_BENCH_DATABASE_URL): a throw-away PostgreSQL database")
    asyncio.run(_check(args.url))  # create the schema once, before the writers race
    jobs = [(args.url, args.seconds, args.concurrency, f"bench-{i}") for i in range(args.writers)]
    t0 = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.writers) as pool:
        counts = pool.map(_run_writer, jobs)
    elapsed = time.monotonic() - t0 - 0.0
    problems = asyncio.run(_check(args.url))
    total = sum(counts)
    rate = total / args.seconds
    print(
        f"writers {args.writers} x {args.concurrency} calls at a time, {args.seconds:.0f} s "
        f"(wall {elapsed:.1f} s)"
    )
    print(f"recordings started+finished: {total} ({rate:.0f}/s; per writer {counts})")
    print(f"ledger chain: {'intact' if not problems else f'{len(problems)} problem(s)'}")
    print(
        f"one node's sustained rate: {args.node_rate:.1f}/s -> the database carries "
        f"{rate / args.node_rate:.0f}x that"
    )
    if problems:
        raise SystemExit("\n".join(problems[:10]))


if __name__ == "__main__":
    main()
