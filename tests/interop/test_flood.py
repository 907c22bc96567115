"""A shortened bench/bench_flood.py in CI: 2,000 junk and unauthorised datagrams per second
for 5 s while 20 legitimate SIPREC calls record (the bench's default is 20 s).

Same assertions as the bench: every legitimate call ends as a complete recording, the
recorder stays up without a traceback, the flood is answered (403 for the unauthorised
INVITEs, 400 for junk that can be answered) and leaves no index row, and the recorder's
peak RSS stays bounded.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

import pytest

from .conftest import RESULTS, ROOT, write_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sys.path.insert(0, str(ROOT))

SECONDS = 5.0
RATE = 2000
CALLS = 20
RSS_GROWTH_LIMIT_MIB = 150


@pytest.fixture(scope="module")
def flood_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        pytest.fail("sipp is not installed; scripts/run-tests installs it")
    from bench.bench_flood import run

    report = run(SECONDS, RATE, CALLS, tmp_path_factory.mktemp("flood"))
    write_results("flood_ci", report)
    return report


def test_all_legitimate_calls_recorded(flood_report: dict[str, Any]) -> None:
    assert flood_report["legit_recorded"] == CALLS, flood_report


def test_recorder_stays_up(flood_report: dict[str, Any]) -> None:
    assert flood_report["recorder_alive"], flood_report
    assert flood_report["tracebacks"] == 0, flood_report


def test_flood_sent_and_answered(flood_report: dict[str, Any]) -> None:
    flood = flood_report["flood"]
    sent = flood["sent"]
    # the sender is paced and bounded: all of it on time, or at worst 90 % in 5 s extra
    assert sent["invite"] + sent["junk"] >= 0.9 * SECONDS * RATE, flood
    assert sent["invite"] + sent["junk"] <= SECONDS * RATE, flood
    assert flood["elapsed_s"] <= SECONDS + 5.5, flood
    answers = flood["answers"]
    # unlisted sources get one stateless 403 each at most (rate-capped: no reflection)
    assert 0 < answers.get("403", 0) <= sent["invite"], answers
    assert "100" not in answers, answers
    assert answers.get("400", 0) > 0, answers
    assert not any(k.startswith("2") for k in answers), answers
    # only the legitimate calls are in the index
    assert flood_report["index_rows_total"] == CALLS, flood_report


def test_memory_bounded(flood_report: dict[str, Any]) -> None:
    start = flood_report["memory_start_kib"].get("VmHWM", 0)
    end = flood_report["memory_end_kib"].get("VmHWM", 0)
    assert start > 0 and end > 0, flood_report
    assert (end - start) / 1024 < RSS_GROWTH_LIMIT_MIB, (start, end)


def test_results_stored() -> None:
    assert (RESULTS / "flood_ci.json").exists()
