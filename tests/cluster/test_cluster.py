"""The whole cluster on loopback: Kamailio (shipped config) + 3 ``serve`` nodes + PostgreSQL +
one shared folder; calls spread by the dispatcher; one node SIGKILLed while it has calls.

``SIPREC_CLUSTER_CALLS`` sets the number of calls (default 300). Each call streams 4 s of
audio; they start 0.1 s apart. It runs in the serial phase: a CPU shared with other tests
would decide whether a packet was lost.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from siprec_recorder.testing import RecorderProcess, write_config
from tests.compliance.srcdriver import PTIME
from tests.compliance.test_crash import audio_extent

from .kamailio import Kamailio
from .test_kamailio import RoutedSrc

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.cluster, pytest.mark.serial]

CALLS = int(os.environ.get("SIPREC_CLUSTER_CALLS", "300"))
AUDIO_S = 4.0
LEASE = {"lease_seconds": 3.0, "heartbeat_interval": 0.5, "takeover_check_interval": 1.0}
BOUND_S = 60.0


PASSWORD = "first-password-1"
NEW_PASSWORD = "a much longer new password 7"


def _portal(node: RecorderProcess, *, first: bool) -> httpx.Client:
    """An admin's session on ``node``'s portal (the first login changes the password)."""
    c = httpx.Client(base_url=f"http://127.0.0.1:{node.listeners['web'][1]}", timeout=30)
    r = c.post(
        "/api/auth/login", json={"login": "olivia", "password": PASSWORD if first else NEW_PASSWORD}
    )
    assert r.status_code == 200, r.text
    if r.json().get("csrf_token"):
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    if first:
        r = c.post("/api/auth/password", json={"current": PASSWORD, "new": NEW_PASSWORD})
        assert r.status_code == 200, r.text
    return c


@dataclass
class Outcome:
    call_id: str
    status: int = 0
    answered_at: float = 0.0
    sent_s: float = 0.0
    bye_status: int | None = None


@pytest.fixture
def nodes(tmp_path: Path, pg_url: str) -> Iterator[list[RecorderProcess]]:
    from tests.pgtest import fresh_database

    async def reset() -> None:
        await (await fresh_database(pg_url)).close()

    asyncio.run(reset())
    shared = tmp_path / "shared"
    started: list[RecorderProcess] = []
    for i, name in enumerate(("node-a", "node-b", "node-c")):
        work = tmp_path / name
        work.mkdir()
        cfg = write_config(
            work,
            storage={"recordings_dir": str(shared), "database_url": pg_url},
            cluster={"node_id": name, **LEASE},
            web={"enabled": True, "listen": "127.0.0.1:0"},
            # Room for every call at once on one survivor (a loaded machine stretches calls).
            rtp={
                "inactivity_timeout": 20.0,
                "port_min": 10000 + 1400 * i,
                "port_max": 10000 + 1400 * i + 1200,
            },
        )
        rp = RecorderProcess(workdir=work, config_path=cfg, recordings=shared)
        rp.start()
        started.append(rp)
    yield started
    for rp in started:
        rp.stop()


def _call(kam: Kamailio, i: int, out: dict[int, Outcome]) -> None:
    call = RoutedSrc(kam.address, seed=i, caller=f"+3247{i:07d}")
    o = out[i] = Outcome(call.call_id)
    try:
        resp = call.invite(timeout=15)
        o.status, o.answered_at = resp.status, time.time()
        if resp.status != 200:
            return
        call.start_audio(AUDIO_S)
        call.wait_audio(AUDIO_S + 10)
        o.sent_s = call.packets_sent * PTIME
        try:
            o.bye_status = call.bye(timeout=8).status
        except TimeoutError:
            o.bye_status = None
    except Exception:  # noqa: BLE001 - recorded as status 0
        pass
    finally:
        call.close()


def test_three_nodes_one_killed(nodes: list[RecorderProcess], tmp_path: Path) -> None:
    a, b, c = nodes
    kam = Kamailio(tmp_path / "kamailio", [n.listeners["udp"] for n in nodes])
    kam.start()
    out: dict[int, Outcome] = {}
    threads: list[threading.Thread] = []
    killed_at = 0.0
    # Seconds from the kill until no call of node-c is left `recording` in the index,
    # watched while the other calls go on.
    dead_done: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            rows = a.search("--limit", str(CALLS * 2))
            dead = [r for r in rows if r["node_id"] == "node-c"]
            if dead and all(r["state"] != "recording" for r in dead):
                dead_done.append(time.time() - killed_at)
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        for i in range(CALLS):
            t = threading.Thread(target=_call, args=(kam, i, out), daemon=True)
            t.start()
            threads.append(t)
            time.sleep(0.1)
            if i == CALLS // 3:
                c.kill()  # while it has calls
                killed_at = time.time()
                watcher.start()
        for t in threads:
            t.join(60)
        assert len(out) == CALLS
        assert all(o.status == 200 for o in out.values()), [
            (o.call_id, o.status) for o in out.values() if o.status != 200
        ]
        # Every call ends up indexed: complete on a live node, or interrupted by a survivor.
        # The bound is for the dead node's calls, counted from the kill; the survivors' own
        # calls end when their SRCs hang up.
        watcher.join(max(0.0, killed_at + BOUND_S - time.time()))
        assert dead_done and dead_done[0] < BOUND_S, "node-c's calls not finalised in time"
        dead_done_after = dead_done[0]
        deadline = time.monotonic() + BOUND_S
        while True:
            rows = {r["call_id"]: r for r in a.search("--limit", str(CALLS * 2))}
            pending = [
                o
                for o in out.values()
                if rows.get(o.call_id, {}).get("state") in (None, "recording")
            ]
            if not pending or time.monotonic() > deadline:
                all_indexed_after = time.time() - killed_at
                break
            time.sleep(1)
        assert not pending, f"{len(pending)} calls not finalised; {c.log()[-1500:]}"
        interrupted = [
            rows[o.call_id] for o in out.values() if rows[o.call_id]["state"] == "interrupted"
        ]
        assert interrupted, "the killed node had no call live"
        assert {r["node_id"] for r in interrupted} == {"node-c"}
        for o in out.values():
            row = rows[o.call_id]
            if row["node_id"] != "node-c":
                assert row["state"] == "complete", row
                start, end, _b, _r = audio_extent(a.recordings / row["file"])
                assert abs((end - start) - o.sent_s) < 0.15, (row, o)  # no packet, no second lost
            if o.answered_at > killed_at + 0.5:
                assert row["node_id"] != "node-c" and row["state"] == "complete", row
        assert {r["node_id"] for r in rows.values()} >= {"node-a", "node-b"}
        res = a.cli("verify", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        # The portal of every live node finds every recording, whichever node made it.
        a.cli("users", "add", "olivia", "--role", "admin", "--password", PASSWORD)
        for i, node in enumerate((a, b)):
            portal = _portal(node, first=i == 0)
            found: set[str] = set()
            for page in range(1, CALLS // 100 + 2):
                r = portal.get("/api/recordings", params={"page": page, "page_size": 100})
                assert r.status_code == 200, r.text
                found |= {item["call_id"] for item in r.json()["items"]}
            assert found == {o.call_id for o in out.values()}, len(found)
        print(
            f"{CALLS} calls: {sum(1 for r in rows.values() if r['state'] == 'complete')} complete, "
            f"{len(interrupted)} interrupted (node-c); node-c's calls indexed "
            f"{dead_done_after:.0f} s after the kill, every call {all_indexed_after:.0f} s"
        )
    finally:
        stop.set()
        kam.stop()
