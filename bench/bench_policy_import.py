"""Benchmark: import 100,000 numbers from a CSV file into a fresh SQLite index.

Usage: ``python bench/bench_policy_import.py [--rows 100000] [--keep DIR]``

Generates a CSV (half the numbers on a template, a quarter with their own slots, a quarter
unmanaged), imports it into a new database, then imports it a second time (every row
unchanged, the validation-only path), and prints the times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siprec_recorder.policy.importer import import_numbers  # noqa: E402
from siprec_recorder.policy.service import PolicyService  # noqa: E402
from siprec_recorder.storage.db import Database  # noqa: E402

HEADER = "number,user,template,managed,status,mode,beep,notify,self_service,user_name,active,slots"


def make_csv(rows: int) -> bytes:
    lines = [HEADER]
    for i in range(rows):
        number = f"+3247{i:07d}"
        user = f"user{i:06d}"
        kind = i % 4
        if kind in (0, 1):
            lines.append(f"{number},{user},office,yes,auto,professional,no,no,no,User {i},yes,")
        elif kind == 2:
            lines.append(
                f"{number},{user},,yes,auto,professional,yes,yes,no,User {i},yes,"
                "mon-fri 08:00-12:00|mon-fri 13:00-18:00"
            )
        else:
            lines.append(f"{number},{user},,no,manual,professional,no,no,yes,User {i},yes,")
    return ("\n".join(lines) + "\n").encode("utf-8")


async def run(rows: int, folder: Path) -> None:
    data = make_csv(rows)
    (folder / "numbers.csv").write_bytes(data)
    db = Database(f"sqlite+aiosqlite:///{folder / 'index.sqlite3'}")
    await db.open()
    svc = PolicyService(db)
    await svc.set_template("office", ["mon-fri 08:00-18:00"], actor="bench")
    marks: list[float] = []

    def progress(done: int, total: int) -> None:
        if done >= total:
            marks.append(time.perf_counter())

    start = time.perf_counter()
    result = await import_numbers(
        db, data, actor="bench", filename="numbers.csv", progress=progress
    )
    end = time.perf_counter()
    first = end - start
    print(f"import of {rows:,} rows ({len(data) / 1e6:.1f} MB): {first:.2f} s  {result.to_dict()}")
    if marks:
        print(
            f"  read + validate: {marks[0] - start:.2f} s;"
            f" write transaction (SQLite write lock held): {end - marks[0]:.2f} s"
        )
    start = time.perf_counter()
    result = await import_numbers(db, data, actor="bench", filename="numbers.csv")
    second = time.perf_counter() - start
    print(f"re-import, all unchanged: {second:.2f} s  {result.to_dict()}")
    start = time.perf_counter()
    result = await import_numbers(db, data, actor="bench", dry_run=True)
    print(f"dry run: {time.perf_counter() - start:.2f} s")
    await db.close()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.rows, args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args.rows, Path(tmp)))


if __name__ == "__main__":
    main()
