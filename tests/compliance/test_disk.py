"""Disk exhaustion on a small file system of its own (tmpfs with a size limit, else an ext4
loop device), holding the recordings *and* the SQLite index.

Below ``[storage] min_free_mb`` new INVITEs get 503 with Retry-After, the log says ALERT and
``siprec_storage_low`` is 1, while a call in progress goes on and is recorded. Then the disk is
filled to the last byte during a call: finished recordings and the index stay intact
(``PRAGMA integrity_check``, SHA-256s, ``siprec-recorder verify`` once space is back), and the
call that met the full disk is recovered after a restart.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from siprec_recorder.storage.integrity import sha256_file
from tests.integration.conftest import RecorderProcess, write_config

from .srcdriver import SrcCall

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIZE_MB = 48
FLOOR_MB = 24


def _mount_small_fs(where: Path, work: Path) -> str:
    """Mount a SIZE_MB file system at ``where``; returns how, or skips saying why not."""
    where.mkdir(parents=True, exist_ok=True)
    errors = []
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if res.returncode == 0:
        return "tmpfs"
    errors.append(f"tmpfs: {res.stderr.strip() or res.returncode}")
    image = work / "disk.img"
    with open(image, "wb") as f:
        f.truncate(SIZE_MB * 1024 * 1024)
    res = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if res.returncode == 0:
        res = subprocess.run(
            ["mount", "-o", "loop", str(image), str(where)], capture_output=True, text=True
        )
        if res.returncode == 0:
            return "ext4 loop device"
    errors.append(f"loop ext4: {res.stderr.strip() or res.returncode}")
    pytest.skip("cannot mount a small file system here (need root): " + "; ".join(errors))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    mnt = tmp_path / "smallfs"
    how = _mount_small_fs(mnt, tmp_path)
    try:
        yield mnt, how
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_mb(path: Path) -> float:
    return shutil.disk_usage(path).free / (1024 * 1024)


def _fill(path: Path, leave_mb: float | None) -> Path:
    """Write a filler file leaving ``leave_mb`` free (None: until the disk is full)."""
    filler = path / f"filler-{time.monotonic_ns()}.bin"
    chunk = b"\xa5" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while leave_mb is None or _free_mb(path) - 1 > leave_mb:
                f.write(chunk)
                f.flush()
            if leave_mb is None:
                while True:
                    f.write(b"\xa5" * 4096)
                    f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        try:
            os.fsync(f.fileno())
        except OSError:
            pass
    return filler


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _index_ok(db: Path) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_disk_floor_and_full_disk(small_fs: tuple[Path, str], tmp_path: Path) -> None:
    root, how = small_fs
    metrics_port = _free_port()
    cfg = write_config(
        tmp_path,
        storage={"recordings_dir": str(root), "min_free_mb": FLOOR_MB},
        metrics={"listen": f"127.0.0.1:{metrics_port}"},
    )
    rec = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=root)
    rec.start()
    calls: list[SrcCall] = []
    try:
        target = rec.listeners["udp"]
        print(f"file system: {how}, {SIZE_MB} MB, floor {FLOOR_MB} MB, free {_free_mb(root):.1f}")
        assert "siprec_storage_low 0" in _metrics(metrics_port)

        # A finished recording from before the trouble.
        a = SrcCall(target, seed=1, caller="+32470000301")
        calls.append(a)
        assert a.invite().status == 200
        a.start_audio(2.0)
        a.wait_audio(10)
        assert a.bye().status == 200
        row_a = rec.wait_for_recordings(1, number="+32470000301")[0]
        assert row_a["state"] == "complete"

        # Two calls in progress when the disk fills up.
        b = SrcCall(target, seed=2, caller="+32470000302")
        d = SrcCall(target, seed=4, caller="+32470000304")
        calls += [b, d]
        for call in (b, d):
            assert call.invite().status == 200
            call.start_audio(120.0)
        time.sleep(1.5)

        # Below the floor: new sessions are declined, with Retry-After, an alert and a metric.
        _fill(root, leave_mb=FLOOR_MB / 3)
        assert _free_mb(root) < FLOOR_MB
        c = SrcCall(target, seed=3, caller="+32470000303")
        calls.append(c)
        resp = c.invite()
        assert resp.status == 503, resp.text
        assert int(resp.headers["retry-after"].split(";")[0]) > 0
        assert "ALERT" in rec.log()
        assert "siprec_storage_low 1" in _metrics(metrics_port)

        # ... while the calls in progress go on; one ends and is recorded completely.
        time.sleep(2.0)
        sent_b = b.stop_audio()
        assert b.bye().status == 200
        row_b = rec.wait_for_recordings(1, number="+32470000302")[0]
        assert row_b["state"] == "complete", row_b
        assert abs(row_b["duration_s"] - sent_b * 0.02) < 1.0, (row_b["duration_s"], sent_b)

        finished = {r["file"]: r["sha256"] for r in (row_a, row_b)}
        for rel, sha in finished.items():
            assert sha256_file(root / rel)[0] == sha

        # The disk full to the last byte during call d: nothing finished is damaged.
        _fill(root, leave_mb=None)
        time.sleep(2.5)  # spool flushes now fail with ENOSPC
        d.stop_audio()
        d.bye()
        time.sleep(2.0)
        assert rec.proc is not None and rec.proc.poll() is None, "the recorder died"
        for rel, sha in finished.items():
            assert sha256_file(root / rel)[0] == sha
        _index_ok(root / "index.sqlite3")
        assert not list(root.rglob("*.part"))

        # Space back, restart: the call that met the full disk is recovered; all verifies.
        for filler in root.glob("filler-*.bin"):
            filler.unlink()
        rec.stop()
        rec.start()
        assert "siprec_storage_low 0" in _metrics(metrics_port)
        rows = {r["call_id"]: r for r in rec.search()}
        row_d = rows[d.call_id]
        assert row_d["state"] in ("complete", "interrupted"), row_d
        assert row_d["file"], row_d
        assert c.call_id not in rows or rows[c.call_id]["state"] == "declined"
        assert not [r for r in rows.values() if r["state"] == "recording"]
        _index_ok(root / "index.sqlite3")
        res = rec.cli("verify", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        print(
            f"call in progress when the disk filled: {row_d['state']}, "
            f"{row_d['duration_s']:.1f} s recorded of {d.packets_sent * 0.02:.1f} s sent"
        )
    finally:
        for call in calls:
            call.close()
        rec.stop()
