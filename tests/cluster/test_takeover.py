"""Two recorder nodes (real ``serve`` processes) on one index and one shared folder.

* A node killed with SIGKILL while it records: one survivor finalises its live call as
  ``interrupted`` within the bound, with the audio up to the last flush, while the survivor's
  own call goes on untouched and ends ``complete``.
* A node restarted while the other records: nothing of the other's is touched.

Run on SQLite (a file in the shared folder) and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.testing import RecorderProcess, write_config
from tests.compliance.srcdriver import PTIME, SrcCall
from tests.compliance.test_crash import audio_extent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEASE = {"lease_seconds": 3.0, "heartbeat_interval": 0.5, "takeover_check_interval": 1.0}
BOUND_S = 60.0  # the bound on a takeover


@pytest.fixture(params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], RecorderProcess]]:
    shared = tmp_path / "shared"
    storage: dict[str, Any] = {"recordings_dir": str(shared)}
    if request.param == "postgresql":
        from tests.pgtest import fresh_database

        url = str(request.getfixturevalue("pg_url"))

        async def reset() -> None:
            await (await fresh_database(url)).close()

        asyncio.run(reset())
        storage["database_url"] = url
    started: list[RecorderProcess] = []

    def node(name: str) -> RecorderProcess:
        work = tmp_path / name
        work.mkdir(exist_ok=True)
        cfg = write_config(work, storage=storage, cluster={"node_id": name, **LEASE})
        rp = RecorderProcess(workdir=work, config_path=cfg, recordings=shared)
        rp.start()
        started.append(rp)
        return rp

    yield node
    for rp in started:
        rp.stop()


def _row(rec: RecorderProcess, call_id: str) -> dict[str, Any] | None:
    rows = [r for r in rec.search() if r["call_id"] == call_id]
    return rows[0] if rows else None


def _call(rec: RecorderProcess, caller: str, seconds: float, seed: int) -> SrcCall:
    call = SrcCall(rec.listeners["udp"], seed=seed, caller=caller)
    resp = call.invite()
    assert resp.status == 200, resp.text
    call.start_audio(seconds)
    return call


def test_a_killed_node_is_taken_over_and_the_survivor_keeps_recording(
    cluster: Callable[[str], RecorderProcess],
) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    on_a = _call(a, "+32470000011", 120.0, seed=1)
    on_b = _call(b, "+32470000012", 30.0, seed=2)
    try:
        time.sleep(3.0)
        b.kill()
        killed_at = time.time()
        sent_before_kill = on_b.stop_audio()
        # The dead node's call: interrupted, by the survivor, within the bound.
        deadline = time.monotonic() + BOUND_S
        row = _row(a, on_b.call_id)
        while time.monotonic() < deadline and (row is None or row["state"] == "recording"):
            time.sleep(0.5)
            row = _row(a, on_b.call_id)
        taken_after = time.time() - killed_at
        assert row is not None and row["state"] == "interrupted", a.log()[-3000:]
        assert row["node_id"] == "node-b"
        assert taken_after < BOUND_S
        assert "taken over by node-a" in a.log()
        _start, end, _blocks, _rate = audio_extent(b.recordings / row["file"])
        sent_s = sent_before_kill * PTIME
        assert sent_s - 1.2 < end <= sent_s + 0.1  # up to the last flush (1 s) before the kill
        assert not list((b.recordings / ".spool" / "@node-b").glob("*/manifest.json"))

        # The survivor's own call was never touched: it ends complete, with all its audio.
        sent_a = on_a.stop_audio() * PTIME
        assert on_a.bye().status == 200
        done = [r for r in a.wait_for_recordings(2) if r["call_id"] == on_a.call_id]
        assert done and done[0]["state"] == "complete" and done[0]["node_id"] == "node-a"
        start, end, _blocks, _rate = audio_extent(a.recordings / done[0]["file"])
        assert abs((end - start) - sent_a) < 0.15
        res = a.cli("verify", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        on_a.close()
        on_b.close()


def test_restarting_a_node_touches_nothing_of_the_others(
    cluster: Callable[[str], RecorderProcess],
) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    on_a = _call(a, "+32470000021", 120.0, seed=3)
    try:
        time.sleep(1.5)
        b.stop()
        b.start()  # recovers its own spools only
        b.kill()
        b.start()  # after a crash too
        time.sleep(4.0)  # longer than a lease: b's takeover pass has run
        row = _row(a, on_a.call_id)
        assert row is not None and row["state"] == "recording"
        sent_s = on_a.stop_audio() * PTIME
        assert on_a.bye().status == 200
        done = [r for r in a.wait_for_recordings(1) if r["call_id"] == on_a.call_id]
        assert done[0]["state"] == "complete"
        start, end, _blocks, _rate = audio_extent(a.recordings / done[0]["file"])
        assert abs((end - start) - sent_s) < 0.15  # not a packet lost
        assert "FileNotFoundError" not in a.log()
    finally:
        on_a.close()


def test_a_second_node_with_the_same_id_refuses_to_start(
    cluster: Callable[[str], RecorderProcess], tmp_path: Path
) -> None:
    a = cluster("node-a")
    twin_dir = tmp_path / "twin"
    twin_dir.mkdir()
    cfg = (a.config_path).read_text()
    (twin_dir / "recorder.toml").write_text(cfg)
    twin = RecorderProcess(
        workdir=twin_dir, config_path=twin_dir / "recorder.toml", recordings=a.recordings
    )
    with pytest.raises(RuntimeError, match="exited early") as exc:
        twin.start(timeout=30)
    lines = [line for line in twin.log().splitlines() if "node_id" in line]
    assert lines == [
        "siprec-recorder: configuration error: [cluster] node_id: node 'node-a' is already "
        f"running (host {__import__('socket').gethostname()}, pid {a.proc.pid}); "  # type: ignore[union-attr]
        "give every node its own node_id"
    ], str(exc.value)
