"""``siprec-recorder search`` as a script uses it: every row by default, pages on request,
CSV for spreadsheets, and a quiet end when the reader closes the pipe."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.index import DeclinedCall, ParticipantInfo, SqlIndex

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ROWS = 1234  # more than two of the command's pages of 500


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search")
    recordings = root / "recordings"
    recordings.mkdir()

    async def fill() -> None:
        db = Database(default_sqlite_url(recordings))
        await db.open()
        index = SqlIndex(db)
        for i in range(ROWS):
            number = "+32470000001" if i % 2 else "+32470000002"
            await index.record_declined(
                DeclinedCall(
                    call_id=f"c{i}",
                    start=T0 + timedelta(seconds=i),
                    reason="outside-schedule",
                    recorded_number=number,
                    other_number="+3225550000",
                    direction="in",
                    participants=[ParticipantInfo(f"p{i}", number=number)],
                )
            )
        await db.close()

    asyncio.run(fill())
    path = root / "recorder.toml"
    path.write_text(f'[storage]\nrecordings_dir = "{recordings}"\n', encoding="utf-8")
    return path


def search(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC_")}
    return subprocess.run(
        [sys.executable, "-m", "siprec_recorder", "search", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_json_returns_every_row_by_default(config: Path) -> None:
    res = search(config, "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == ROWS
    assert len({r["id"] for r in rows}) == ROWS
    starts = [r["start"] for r in rows]
    assert starts == sorted(starts, reverse=True)  # newest first, across pages
    assert res.stderr == ""


def test_number_filter_and_text_output(config: Path) -> None:
    res = search(config, "--number", "0470000001")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == f"{ROWS // 2} recording(s)"
    assert all("+32470000001" in line for line in lines[:-1])


def test_limit_says_on_stderr_that_there_is_more(config: Path) -> None:
    res = search(config, "--json", "--limit", "200")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 200
    assert "more recordings match; next page: --offset 200" in res.stderr
    last = search(config, "--json", "--limit", "200", "--offset", str(ROWS - 34))
    assert len(json.loads(last.stdout)) == 34
    assert last.stderr == ""


def test_csv(config: Path) -> None:
    res = search(config, "--csv", "--since", (T0 + timedelta(seconds=ROWS - 3)).isoformat())
    assert res.returncode == 0, res.stderr
    table = list(csv.reader(io.StringIO(res.stdout)))
    assert table[0][:5] == ["id", "start", "end", "duration_s", "state"]
    assert len(table) == 4
    assert [r[4] for r in table[1:]] == ["declined"] * 3
    assert table[1][table[0].index("reason")] == "outside-schedule"


def test_closed_pipe_is_quiet(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC_")}
    res = subprocess.run(
        f"{sys.executable} -m siprec_recorder search --json --config {config} | head -n 3",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.stdout.splitlines()[0] == "["
    assert len(res.stdout.splitlines()) == 3
    assert res.stderr == ""
