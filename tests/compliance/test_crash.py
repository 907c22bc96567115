"""Crash safety: SIGKILL the real recorder during live calls, restart it, and find every call
recorded up to (at most about) one second before the kill, ``interrupted``, indexed, with its
sidecar; no ``.part`` file and no open row left; a call after the restart records normally.

The SRC is :mod:`.srcdriver`: it knows how many 20 ms packets it had sent when the recorder
died, so the audio lost is ``sent - recorded``, measured on the decoded MP3 (from the first to
the last sample of our tone). The worst case over the calls is printed (``-s`` to see it).
A SIGKILL leaves whatever the recorder had not yet written out of its own buffers unwritten,
which is the "killed process with unflushed buffers" case. Data written but not fsync'd
survives a SIGKILL (the kernel still has it), so the power-cut test goes further: the
recordings live on an ext4 loop device that is shut down with ``EXT4_IOC_SHUTDOWN`` and
``NOLOGFLUSH`` (everything not yet fsync'd is lost, as at a power cut), then the recorder is
killed and the file system remounted (journal replay) before the restart.

Both tests run against both stores (``backend``, as in
``tests/integration/test_object_store.py``): the folder, and a real S3 server with Object
Lock (SeaweedFS, ``tests/conftest.py``). With the object store the recovered recordings are
uploaded after the restart; each one is then read back from the server (our SHA-256 as its
checksum, COMPLIANCE retention) and the audio checked is the object's, not a local file.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import sqlite3
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siprec_recorder.testing import descendants
from siprec_recorder.testing_s3 import SeaweedS3
from tests.integration.audio import decode_mp3
from tests.integration.conftest import RecorderProcess, write_config

from .srcdriver import BLOCK_S, PTIME, SrcCall, levels


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKENDS = ["folder", "s3"]
PREFIX = "rec"  # the key prefix of the recorder's objects in the test bucket


@dataclass
class Backend:
    """Where the recorder under test keeps finished recordings, and how a test reads them."""

    name: str
    s3: SeaweedS3 | None = None
    bucket: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def storage(self, recordings: Path) -> dict[str, Any]:
        """The ``[storage]`` keys of a recorder that keeps its recordings here."""
        values: dict[str, Any] = {"recordings_dir": str(recordings), "min_free_mb": 0}
        if self.s3 is not None:
            values.update(self.s3.store_config(self.bucket, PREFIX, object_lock="compliance"))
        return values

    def _object(self, key: str) -> tuple[dict[str, Any], bytes]:
        assert self.s3 is not None
        s3 = self.s3

        async def go() -> tuple[dict[str, Any], bytes]:
            async with s3.client() as c:
                full = f"{PREFIX}/{key}"
                head = await c.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
                got = await c.get_object(Bucket=self.bucket, Key=full)
                async with got["Body"] as body:
                    return dict(head), await body.read()

        return asyncio.run(go())

    def mp3(self, rec: Any, row: dict[str, Any], timeout: float = 120.0) -> Path | bytes:
        """The recording's MP3 where this backend keeps it; with the object store, once the
        uploader has stored it (it lets the local copy go only then), read from the server,
        which must hold our SHA-256 and COMPLIANCE retention for it and for its sidecar."""
        local = rec.recordings / row["file"]
        if self.s3 is None:
            assert local.is_file() and (rec.recordings / row["sidecar"]).is_file()
            return local
        deadline = time.monotonic() + timeout
        while local.exists() or (rec.recordings / row["sidecar"]).exists():
            assert time.monotonic() < deadline, (
                f"{row['file']} not uploaded in {timeout}s:\n{rec.log()[-3000:]}"
            )
            time.sleep(0.3)
        head, data = self._object(row["file"])
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == row["sha256"]
        assert head["ObjectLockMode"] == "COMPLIANCE", head
        side_head, _ = self._object(row["sidecar"])
        assert side_head["ObjectLockMode"] == "COMPLIANCE", side_head
        return data


def make_backend(request: pytest.FixtureRequest, name: str) -> Backend:
    """The backend called ``name``; ``s3`` starts (once per session) the test S3 server."""
    if name == "folder":
        return Backend(name)
    s3: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return Backend(name, s3, bucket, s3.env())


MAX_LOSS_MS = 1000.0  # the bound: "up to at most 1 s before the kill"
TOLERANCE_MS = 60.0  # measurement: 10 ms analysis windows, MP3 frame edges, scheduling


def audio_extent(path: Path | bytes) -> tuple[float, float, np.ndarray, int]:
    """(start s, end s) of the non-silent audio in an MP3, its 100 ms block RMS, and the rate."""
    pcm, rate = decode_mp3(path)
    x = pcm[:, 0].astype(np.float64)
    win = rate // 100  # 10 ms
    n = len(x) // win
    rms = np.sqrt((x[: n * win].reshape(n, win) ** 2).mean(axis=1))
    loud = np.nonzero(rms > 0.03)[0]
    assert len(loud), f"{path}: no audio at all"
    start, end = loud[0] * win / rate, (loud[-1] + 1) * win / rate
    seg = x[int(start * rate) : int(end * rate)]
    block = int(BLOCK_S * rate)
    nb = len(seg) // block
    blocks = np.sqrt((seg[: nb * block].reshape(nb, block) ** 2).mean(axis=1))
    return start, end, blocks, rate


def spool_bytes(rec: Any) -> int:
    return sum(p.stat().st_size for p in (rec.recordings / ".spool").rglob("*") if p.is_file())


def wait_for_worst_moment(rec: Any, timeout: float = 10.0) -> float:
    """Sleep until just before the recorder's next spool flush (the moment when the most
    audio is still only in its memory); returns the measured flush period.

    One flush writes several files one after the other, so size changes closer than 0.3 s
    together are one flush; its start is the first change."""
    flushes: list[float] = []
    last_size, last_change = spool_bytes(rec), 0.0
    deadline = time.monotonic() + timeout
    while len(flushes) < 3 and time.monotonic() < deadline:
        time.sleep(0.002)
        size = spool_bytes(rec)
        if size != last_size:
            now = time.monotonic()
            if now - last_change > 0.3:
                flushes.append(now)
            last_size, last_change = size, now
    assert len(flushes) == 3, "the spool did not grow: is the recorder flushing?"
    period = min(flushes[2] - flushes[1], flushes[1] - flushes[0])
    time.sleep(max(0.0, flushes[2] + period - 0.02 - time.monotonic()))
    return period


def sigkill(rec: Any) -> None:
    """SIGKILL: no chance to flush or finalise; what the kernel already has survives."""
    rec.proc.kill()


def kill_round(
    rec: Any,
    round_no: int,
    n_calls: int,
    extra_wait: float | None,
    crash: Callable[[Any], None] = sigkill,
    after_crash: Callable[[], None] = lambda: None,
    backend: Backend | None = None,
) -> dict[str, float]:
    """Start ``n_calls`` calls, crash the recorder mid-call, restart it, check every call
    (read from where ``backend`` keeps it, the folder by default); returns the audio lost per
    call (ms). ``extra_wait`` None: crash just before a flush."""
    store = backend or Backend("folder")
    target = rec.listeners["udp"]
    calls = [
        SrcCall(target, seed=100 * round_no + i, caller=f"+324700{round_no:02d}{i:03d}")
        for i in range(n_calls)
    ]
    try:
        for call in calls:
            resp = call.invite()
            assert resp.status == 200, resp.text
            call.start_audio(120.0)
            time.sleep(0.37)  # staggered: each call is at another point of its audio
        time.sleep(2.5 + (extra_wait or 0.0))  # moves the kill against the flush ticks
        if extra_wait is None:
            period = wait_for_worst_moment(rec)
            print(
                f"round {round_no}: spool flush period {period * 1000:.0f} ms, killing 20 ms "
                "before the next flush"
            )
        running = {c.call_id: time.time() - (c.first_packet_at or time.time()) for c in calls}
        crash(rec)
        sent = {c.call_id: c.packets_sent for c in calls}
        old_pid = rec.proc.pid
        workers = descendants(old_pid)  # forkserver, finaliser workers, resource tracker
        rec.proc.kill()
        rec.proc.wait()
        rec.proc = None
        # The killed recorder's helper processes end with it (none left to race recovery).
        deadline = time.monotonic() + 5
        while workers and time.monotonic() < deadline:
            workers = [p for p in workers if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.05)
        assert not workers, f"finaliser processes outlived the recorder: {workers}"
        for call in calls:
            call.stop_audio()
        assert all(n > 100 for n in sent.values()), sent
        after_crash()

        rec.start()  # recovery of the orphan spools runs before the recorder is ready
        rows = {r["call_id"]: r for r in rec.search()}
        assert set(rows) >= set(sent), f"calls missing from the index:\n{rec.log()[-3000:]}"
        assert not [r for r in rows.values() if r["state"] == "recording"], "open rows remain"
        assert not list(rec.recordings.rglob("*.part")), "a .part file was left behind"
        assert not list((rec.recordings / ".spool").glob("**/manifest.json")), (
            "spools left after recovery"
        )

        losses: dict[str, float] = {}
        for call in calls:
            row = rows[call.call_id]
            assert row["state"] == "interrupted", row
            assert row["file"] and row["sidecar"] and row["sha256"]
            start, end, blocks, _rate = audio_extent(store.mp3(rec, row))
            sent_ms = sent[call.call_id] * PTIME * 1000
            recorded_ms = (end - start) * 1000
            losses[call.call_id] = sent_ms - recorded_ms
            # What was recorded is this call's own audio, in order (its level pattern).
            expected = levels(call.seed, 120.0)[: len(blocks)] * 32767 / np.sqrt(2) / 32768
            k = min(len(blocks), len(expected)) - 1
            corr = np.corrcoef(blocks[:k], expected[:k])[0, 1]
            assert corr > 0.9, f"{call.call_id}: recorded audio does not match what was sent"
            print(
                f"round {round_no} call {call.call_id}: running {running[call.call_id]:.2f} s "
                f"at the kill, sent {sent_ms:.0f} ms, recorded {recorded_ms:.0f} ms, "
                f"lost {losses[call.call_id]:.0f} ms (envelope corr {corr:.3f})"
            )
        return losses
    finally:
        for call in calls:
            call.close()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_sigkill_mid_call_loses_at_most_a_second(
    request: pytest.FixtureRequest, recorder_factory: Any, tmp_path: Path, backend_name: str
) -> None:
    backend = make_backend(request, backend_name)
    rec = recorder_factory(env=backend.env, storage=backend.storage(tmp_path / "recordings"))
    losses: dict[str, float] = {}
    for round_no, extra in enumerate((0.0, 0.35, 0.7, None), start=1):
        losses.update(kill_round(rec, round_no, 3, extra, backend=backend))
    worst = max(losses.values())
    print(f"worst-case audio lost at a SIGKILL: {worst:.0f} ms over {len(losses)} calls")
    assert worst <= MAX_LOSS_MS + TOLERANCE_MS, (
        f"lost {worst:.0f} ms of audio at the kill (bound {MAX_LOSS_MS:.0f} ms): {losses}"
    )
    assert min(losses.values()) > -TOLERANCE_MS, f"more audio than was sent? {losses}"

    res = rec.cli("verify", check=False)
    assert res.returncode == 0, res.stdout + res.stderr

    # A call after the restart records normally.
    after = SrcCall(rec.listeners["udp"], seed=7, caller="+32470000200")
    try:
        resp = after.invite()
        assert resp.status == 200, resp.text
        after.start_audio(3.0)
        after.wait_audio(10)
        assert after.bye().status == 200
        done = rec.wait_for_recordings(1, number="+32470000200")
        assert done[0]["state"] == "complete"
        start, end, _blocks, _ = audio_extent(backend.mp3(rec, done[0]))
        assert abs((end - start) - 3.0) < 0.15
    finally:
        after.close()
    # Every recording, the recovered ones included, is where the backend keeps them.
    for row in rec.search():
        if row["file"]:
            backend.mp3(rec, row)


EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True)


@pytest.fixture
def ext4_loop(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 256 MB ext4 file system on a loop device (data=ordered, the default)."""
    image, mnt = tmp_path / "pl.img", tmp_path / "pl"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(256 * 1024 * 1024)
    res = _run("mkfs.ext4", "-q", "-F", str(image))
    if res.returncode == 0:
        res = _run("mount", "-o", "loop", str(image), str(mnt))
    if res.returncode != 0:
        pytest.skip(f"cannot mount an ext4 loop device here (need root): {res.stderr.strip()}")
    try:
        yield image, mnt
    finally:
        for _ in range(20):
            if _run("umount", str(mnt)).returncode == 0 or not os.path.ismount(mnt):
                break
            time.sleep(0.5)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_power_cut_mid_call_loses_at_most_a_second(
    request: pytest.FixtureRequest,
    ext4_loop: tuple[Path, Path],
    tmp_path: Path,
    backend_name: str,
) -> None:
    image, mnt = ext4_loop
    backend = make_backend(request, backend_name)
    cfg = write_config(tmp_path, storage=backend.storage(mnt))
    rec = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=mnt, env=backend.env)
    rec.start()

    def power_cut(rec: Any) -> None:
        fd = os.open(mnt, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)

    def remount() -> None:
        for _ in range(40):  # the recorder's worker processes may take a moment to exit
            if _run("umount", str(mnt)).returncode == 0:
                break
            time.sleep(0.25)
        else:
            raise AssertionError("cannot unmount the shut-down file system")
        res = _run("mount", "-o", "loop", str(image), str(mnt))
        assert res.returncode == 0, res.stderr

    try:
        losses = kill_round(rec, 9, 3, None, crash=power_cut, after_crash=remount, backend=backend)
        worst = max(losses.values())
        print(f"worst-case audio lost at a power cut: {worst:.0f} ms over {len(losses)} calls")
        assert worst <= MAX_LOSS_MS + TOLERANCE_MS, losses
        conn = sqlite3.connect(f"file:{mnt / 'index.sqlite3'}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        res = rec.cli("verify", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        rec.stop()
