"""Store benchmark: finished recordings per second into the folder and into an S3 object store.

    python bench/bench_store.py [--recordings 200] [--seconds 60] [--concurrency 4]
                                [--compare-clients]

Both sides do what a recorder does with a finished call once its MP3 exists, in one process:
the folder side writes the MP3 and its sidecar into the recordings tree (``.part``, fsync,
rename) and indexes the row; the object-store side does the same and then runs the
:class:`~siprec_recorder.storage.uploader.Uploader` pass that serve runs, which sends each MP3
and sidecar to a private SeaweedFS on loopback (``siprec_recorder.testing_s3``, Object Lock
COMPLIANCE, SHA-256 checked by the server), reads back what the server holds, and removes the
local copies. The MP3s are real (a tone of ``--seconds`` at 32 kbit/s, encoded once).

Printed: recordings/s for each side, the recorder process's CPU (``time.process_time``) per
call-second of audio stored, and the difference: the extra CPU per call-second the object
store costs this process (the S3 server's own CPU is printed apart: on a real deployment it
runs elsewhere). ``--compare-clients`` also times plain PUTs of the same objects with
aiobotocore and with obstore (when installed), the measurement behind the choice of client.
Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siprec_recorder.storage.db import Database, default_sqlite_url  # noqa: E402
from siprec_recorder.storage.files import FileLayout  # noqa: E402
from siprec_recorder.storage.index import (  # noqa: E402
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    SqlIndex,
)
from siprec_recorder.storage.mp3 import encode_mp3  # noqa: E402
from siprec_recorder.storage.objects import S3Settings, S3Store  # noqa: E402
from siprec_recorder.storage.uploader import Uploader  # noqa: E402
from siprec_recorder.testing_s3 import SeaweedS3  # noqa: E402

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _mp3(seconds: float) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000.0
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(-1, 1)
    return encode_mp3(pcm, 8000, 32)


async def _finish_into_folder(root: Path, n: int, mp3: bytes, seconds: float) -> Database:
    """Write and index ``n`` finished recordings as the finaliser and the index do."""
    db = Database(default_sqlite_url(root))
    await db.open()
    index = SqlIndex(db)
    layout = FileLayout(root)
    for i in range(n):
        start = T0 + timedelta(seconds=90 * i)
        rec_id = await index.create_recording(
            NewRecording(
                call_id=f"bench-{i}",
                start=start,
                recorded_number="+32470000001",
                other_number="+32478999999",
                direction="out",
                participants=[ParticipantInfo(participant_id="a", number="+32470000001")],
            )
        )
        rel = layout.relative_path("+32470000001", start, "out", "+32478999999", rec_id)
        # Each file differs (its id appended), as real recordings do.
        data = mp3 + rec_id.encode()
        sha, size = layout.write_atomic(rel, data)
        sidecar = layout.write_sidecar(rel, {"id": rec_id, "sha256": sha})
        await index.finish_recording(
            rec_id,
            FinishedRecording(
                end=start + timedelta(seconds=seconds),
                duration_s=seconds,
                file=rel,
                sha256=sha,
                size_bytes=size,
                sample_rate=8000,
                channels=1,
                sidecar=sidecar,
            ),
        )
    return db


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _compare_clients(s3: SeaweedS3, bucket: str, blobs: list[bytes]) -> None:
    from aiobotocore.session import get_session

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    ) as c:
        for i, b in enumerate(blobs):
            await c.put_object(Bucket=bucket, Key=f"cmp/aiobotocore/{i}", Body=b)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"  aiobotocore put: {len(blobs) / wall:7.1f} objects/s, "
        f"{1000 * cpu / len(blobs):.2f} ms CPU each"
    )
    try:
        from obstore.store import S3Store as ObStore
    except ImportError:
        print("  obstore: not installed")
        return
    store = ObStore(
        bucket,
        endpoint=s3.endpoint,
        region="us-east-1",
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    import obstore

    cpu0, t0 = time.process_time(), time.perf_counter()
    for i, b in enumerate(blobs):
        await obstore.put_async(store, f"cmp/obstore/{i}", b)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"  obstore put:     {len(blobs) / wall:7.1f} objects/s, "
        f"{1000 * cpu / len(blobs):.2f} ms CPU each"
    )
    print("  (obstore has no Object Lock retention, legal hold or versioned delete: not usable)")


async def main(args: argparse.Namespace) -> None:
    mp3 = _mp3(args.seconds)
    call_s = args.recordings * args.seconds
    print(f"{args.recordings} recordings of {args.seconds:.0f} s ({len(mp3)} bytes of MP3 each)")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp_s:
        tmp = Path(tmp_s)
        s3 = SeaweedS3(tmp / "weed")
        s3.start()
        try:
            s3.create_bucket("bench-rec", object_lock=True)
            results: dict[str, tuple[float, float]] = {}
            for side in ("folder", "s3"):
                root = tmp / side
                root.mkdir()
                cpu0, t0 = time.process_time(), time.perf_counter()
                db = await _finish_into_folder(root, args.recordings, mp3, args.seconds)
                if side == "s3":
                    store = S3Store(
                        S3Settings(
                            "bench-rec",
                            "rec/",
                            s3.endpoint,
                            "us-east-1",
                            s3.access_key,
                            s3.secret_key,
                            "compliance",
                        )
                    )
                    up = Uploader(db, root, store, concurrency=args.concurrency)
                    weed0 = _cpu_of(s3.proc.pid) if s3.proc else 0.0
                    failed = await up.run_once()
                    weed_cpu = (_cpu_of(s3.proc.pid) if s3.proc else 0.0) - weed0
                    await store.close()
                    assert failed == 0 and up.counters.uploaded == args.recordings, up.counters
                    left = list(FileLayout(root).iter_recordings())
                    assert not left, f"{len(left)} recordings still local"
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                await db.close()
                results[side] = (wall, cpu)
                print(
                    f"{side:>6}: {args.recordings / wall:8.1f} recordings/s, "
                    f"{1000 * cpu / call_s:.3f} ms CPU per call-second"
                )
            extra = (results["s3"][1] - results["folder"][1]) / call_s
            print(f"object store extra CPU in the recorder: {1000 * extra:.3f} ms per call-second")
            print(
                "(SeaweedFS's own CPU for the uploads: "
                f"{1000 * weed_cpu / call_s:.3f} ms per call-second)"
            )
            if args.compare_clients:
                print("client comparison, same objects, one at a time:")
                await _compare_clients(
                    s3, "bench-rec", [mp3 + bytes([i % 256]) for i in range(args.recordings)]
                )
        finally:
            s3.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recordings", type=int, default=200)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--compare-clients", action="store_true")
    asyncio.run(main(p.parse_args()))
