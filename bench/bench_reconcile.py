"""What a CDR reconciliation costs: reading the file, the policy question, the match.

Builds a SQLite index with ``--calls`` finished recordings (SqlIndex, batched as the recorder
writes them), writes a generic-layout CDR file of the same calls plus 1% that were never
offered, and times :func:`read_cdr_file` and :func:`reconcile_calls` separately.

Run: ``python bench/bench_reconcile.py [--calls 20000]``. Prints rows per second of each
step; nothing is kept (temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from siprec_recorder.assurance.cdr import read_cdr_file  # noqa: E402
from siprec_recorder.assurance.reconcile import reconcile_calls  # noqa: E402
from siprec_recorder.policy.engine import PolicyEngine  # noqa: E402
from siprec_recorder.storage.db import Database, default_sqlite_url  # noqa: E402
from siprec_recorder.storage.index import (  # noqa: E402
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    SqlIndex,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def z(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "recordings"
        db = Database(default_sqlite_url(root))
        await db.open()
        index = SqlIndex(db, batch_window=0.05)
        plan = []
        for n in range(calls):
            # 50 traders, a call every 1.5 s over the day
            start = T0 + timedelta(seconds=1.5 * n)
            plan.append((start, f"+3247000{n % 50:04d}", f"+3222{n:07d}"))

        async def one(start: datetime, a: str, b: str) -> None:
            rec_id = await index.create_recording(
                NewRecording(
                    call_id=f"c{b}",
                    start=start,
                    recorded_number=a,
                    other_number=b,
                    direction="out",
                    participants=[
                        ParticipantInfo(participant_id="a", aor=f"tel:{a}", number=a),
                        ParticipantInfo(participant_id="b", aor=f"tel:{b}", number=b),
                    ],
                )
            )
            await index.finish_recording(
                rec_id,
                FinishedRecording(
                    end=start + timedelta(seconds=60), duration_s=60.0, state="complete"
                ),
            )

        t = time.perf_counter()
        for i in range(0, calls, 2000):
            await asyncio.gather(*(one(*p) for p in plan[i : i + 2000]))
        build = time.perf_counter() - t
        path = Path(tmp) / "cdr.csv"
        with path.open("w") as f:
            f.write("start,end,caller,callee\n")
            for start, a, b in plan:
                f.write(f"{z(start)},{z(start + timedelta(seconds=61))},{a},{b}\n")
            for n in range(calls // 100):
                start = T0 + timedelta(seconds=1.5 * n + 0.7)
                f.write(
                    f"{z(start)},{z(start + timedelta(seconds=30))},+32470000001,+3229{n:07d}\n"
                )
        rows = calls + calls // 100
        t = time.perf_counter()
        cdr = read_cdr_file(path)
        read = time.perf_counter() - t
        engine = PolicyEngine(db)
        t = time.perf_counter()
        report = await reconcile_calls(db, engine, cdr)
        match = time.perf_counter() - t
        await engine.close()
        await db.close()
        c = report.counts
        assert c["recorded"] == calls and c["never_offered"] == calls // 100, c
        print(f"index built: {calls} recordings in {build:.1f} s")
        print(f"read CDR file:  {rows} rows in {read:.2f} s = {rows / read:,.0f} rows/s")
        print(f"reconcile:      {rows} calls in {match:.2f} s = {rows / match:,.0f} calls/s")
        print(f"total:          {read + match:.2f} s for {rows} CDR rows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(main(args.calls))
