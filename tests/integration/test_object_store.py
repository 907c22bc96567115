"""Recordings kept in an S3-compatible store with Object Lock, against the folder backend.

A real ``siprec-recorder serve`` records replayed calls; with ``recordings_url`` set, the
uploader moves each finished recording to a private SeaweedFS (tests/conftest.py), which
enforces Object Lock itself. Each test reads back from the server what it holds: retention,
legal hold, checksums; an early delete is asked of the server directly and refused by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from siprec_recorder.compliance.crypto import load_keyring
from siprec_recorder.replay.api import replay_capture, replay_many
from siprec_recorder.testing import RecorderProcess, write_config
from siprec_recorder.testing_s3 import SeaweedS3

from .audio import decode_mp3, envelope_match
from .conftest import PCAPS
from .test_replay_g711 import expected_legs

pytestmark = [pytest.mark.integration]

PASSWORD = "first-password-1"
NEW_PASSWORD = "a much longer new password 7"


def _metric(text: str, name: str) -> int:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return int(float(line.split()[1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _row(rec: RecorderProcess, rec_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(rec.recordings / "index.sqlite3")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM recordings WHERE id = ?", (rec_id,)).fetchone()
    conn.close()
    return dict(row)


def _aware(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def _head(s3: SeaweedS3, bucket: str, key: str) -> dict[str, Any] | None:
    async def go() -> dict[str, Any] | None:
        async with s3.client() as c:
            try:
                h = await c.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            except Exception as exc:
                if "404" in str(exc) or "Not Found" in str(exc):
                    return None
                raise
            try:
                hold = await c.get_object_legal_hold(Bucket=bucket, Key=key)
                h["_hold"] = hold["LegalHold"]["Status"]
            except Exception:
                h["_hold"] = "OFF"
            return dict(h)

    return _run_async(go())  # type: ignore[no-any-return]


def _delete_version(s3: SeaweedS3, bucket: str, key: str, version: str) -> str:
    """Ask the server itself to delete one version; the error code it answers ("" = done)."""

    async def go() -> str:
        async with s3.client() as c:
            try:
                await c.delete_object(Bucket=bucket, Key=key, VersionId=version)
            except Exception as exc:
                return str(getattr(exc, "response", {}).get("Error", {}).get("Code", exc))
            return ""

    return _run_async(go())  # type: ignore[no-any-return]


def _wait_stored(rec: RecorderProcess, row: dict[str, Any], timeout: float = 60.0) -> None:
    """Until the uploader has let the local MP3 go (it does so only once stored)."""
    path = rec.recordings / row["file"]
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{row['file']} still local after {timeout}s:\n{rec.log()[-3000:]}"
            )
        time.sleep(0.3)


def _portal_client(port: int) -> httpx.Client:
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    r = c.post("/api/auth/login", json={"login": "olivia", "password": PASSWORD})
    assert r.status_code == 200, r.text
    if r.json().get("csrf_token"):
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    r = c.post("/api/auth/password", json={"current": PASSWORD, "new": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    return c


@pytest.mark.parametrize(
    ("backend", "encrypted"), [("s3", False), ("folder", False), ("s3", True), ("folder", True)]
)
def test_record_play_verify_hold_purge(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, encrypted: bool
) -> None:
    storage: dict[str, Any] = {}
    env: dict[str, str] = {}
    s3: SeaweedS3 | None = None
    bucket = ""
    if backend == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        storage.update(s3.store_config(bucket, object_lock="compliance"))
        env.update(s3.env())
    key_file = tmp_path / "rec.key"
    if encrypted:
        key_file.write_text(os.urandom(32).hex())
        storage["encryption_key_file"] = str(key_file)
    port = _free_port()
    cfg = write_config(
        tmp_path,
        storage={"recordings_dir": str(tmp_path / "recordings"), "min_free_mb": 0, **storage},
        web={"enabled": True, "listen": f"127.0.0.1:{port}"},
    )
    rec = RecorderProcess(tmp_path, cfg, tmp_path / "recordings", env=env)
    rec.start()
    try:
        for k, v in env.items():
            os.environ[k] = v  # for rec.cli (purge, hold, verify read the store too)
        rec.cli("users", "add", "olivia", "--role", "admin", "--password", PASSWORD)
        pcap = PCAPS / "pkts_sip_rtp.pcap"
        result = asyncio.run(replay_capture(pcap, rec.listeners["udp"]))
        assert result.ok
        (found,) = rec.wait_for_recordings(1)
        row = _row(rec, found["id"])
        key = row["file"]
        if s3 is not None:
            _wait_stored(rec, row)
            assert not (rec.recordings / row["sidecar"]).exists()
            head = _head(s3, bucket, f"rec/{key}")
            assert head is not None
            # What the server holds: our SHA-256, and retention until the row's date.
            import base64

            assert base64.b64decode(head["ChecksumSHA256"]).hex() == row["sha256"]
            assert head["ObjectLockMode"] == "COMPLIANCE"
            want = _aware(row["retention_until"])
            assert abs((head["ObjectLockRetainUntilDate"] - want).total_seconds()) < 1
            assert _head(s3, bucket, f"rec/{row['sidecar']}") is not None
            # Not even the store's own administrator key deletes it early.
            assert _delete_version(s3, bucket, f"rec/{key}", head["VersionId"]) == "AccessDenied"
            assert _head(s3, bucket, f"rec/{key}") is not None
        else:
            assert (rec.recordings / key).is_file()

        res = rec.cli("verify")
        assert "ok: every file" in res.stdout, res.stdout

        # Through the portal, from wherever it is kept: the whole file (an admin's download)
        # and a range of it (the player's).
        client = _portal_client(port)
        whole = client.get(f"/api/recordings/{row['id']}/download")
        assert whole.status_code == 200, whole.text
        part = client.get(f"/api/recordings/{row['id']}/audio", headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == whole.content[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(whole.content)}"
        if encrypted:
            ring = load_keyring(key_file=key_file)
            assert ring.current is not None
            assert hashlib.sha256(whole.content).hexdigest() != row["sha256"]
        else:
            assert hashlib.sha256(whole.content).hexdigest() == row["sha256"]
        got, rate = decode_mp3(whole.content)
        legs, _ = expected_legs(pcap)
        corr, _lag = envelope_match(got[:, 0], rate, legs["caller"], 8000)
        assert corr >= 0.9

        # Legal hold: the index's flag, and the store's own hold on the object.
        rec.cli("hold", row["id"], "--reason", "case 17")
        if s3 is not None:
            held = _head(s3, bucket, f"rec/{key}")
            assert held is not None and held["_hold"] == "ON"
        rec.cli("release", row["id"], "--reason", "case 17 closed")
        if s3 is not None:
            released = _head(s3, bucket, f"rec/{key}")
            assert released is not None and released["_hold"] == "OFF"

        # Someone with write access to the index moves the retention date into the past. In
        # the folder the sidecar beside the file still says when it may go; in the store
        # (sidecar uploaded too) the server's Object Lock refuses the delete.
        conn = sqlite3.connect(rec.recordings / "index.sqlite3")
        past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        long_ago = (datetime.now(UTC) - timedelta(days=7 * 366)).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute(
            "UPDATE recordings SET retention_until = ?, start = ? WHERE id = ?",
            (past, long_ago, row["id"]),
        )
        conn.commit()
        conn.close()
        res = rec.cli("purge", check=False)
        if s3 is not None:
            assert res.returncode == 1, res.stdout + res.stderr
            assert "refused by the store" in res.stdout and row["id"] in res.stdout
            assert _head(s3, bucket, f"rec/{key}") is not None
            assert _row(rec, row["id"])["file"] == key  # still names it; retried next run
        else:
            assert res.returncode == 0, res.stdout + res.stderr
            assert "0 recording(s) purged" in res.stdout
            assert (rec.recordings / key).is_file()
        assert rec.cli("verify").returncode == 0
    finally:
        for k in env:
            os.environ.pop(k, None)
        rec.stop()


@pytest.mark.serial
def test_store_outage_under_fifty_calls_loses_nothing(
    seaweed_factory: list[SeaweedS3], tmp_path: Path
) -> None:
    """The store goes away for 30 s while 50 calls are live and end: every recording waits on
    local disk and is retried; the recorder is killed meanwhile; once both are back every
    recording is in the store and verify passes."""
    s3 = SeaweedS3(tmp_path / "s3")
    seaweed_factory.append(s3)
    s3.start()
    s3.create_bucket("outage-rec")
    cfg = write_config(
        tmp_path,
        storage={
            "recordings_dir": str(tmp_path / "recordings"),
            "min_free_mb": 0,
            **s3.store_config("outage-rec", object_lock="compliance"),
        },
    )
    rec = RecorderProcess(tmp_path, cfg, tmp_path / "recordings", env=s3.env())
    rec.start()
    try:
        results: list[Any] = []
        calls = threading.Thread(
            target=lambda: results.extend(
                asyncio.run(replay_many(PCAPS / "pkts_sip_rtp.pcap", rec.listeners["udp"], 50))
            )
        )
        calls.start()
        time.sleep(1.0)
        down_at = time.monotonic()
        s3.stop()
        calls.join(120)
        assert len(results) == 50 and all(r.ok for r in results)
        rows = rec.wait_for_recordings(50, timeout=120)
        metrics_host, metrics_port = rec.listeners["metrics"]
        time.sleep(max(0.0, 30.0 - (time.monotonic() - down_at)))
        # While the store is away nothing has gone: every MP3 is still on local disk.
        assert all((rec.recordings / r["file"]).is_file() for r in rows)
        text = httpx.get(f"http://{metrics_host}:{metrics_port}/metrics").text
        failures = _metric(text, "siprec_store_upload_failures_total")
        pending = _metric(text, "siprec_store_pending")
        assert failures > 0 and pending > 0, text
        # The recorder dies too (SIGKILL) while the store is away: the queue is the folder,
        # so the next start uploads what the dead one could not.
        rec.kill()
        s3.start()
        rec.start()
        metrics_host, metrics_port = rec.listeners["metrics"]
        deadline = time.monotonic() + 120
        while any((rec.recordings / r["file"]).exists() for r in rows):
            assert time.monotonic() < deadline, rec.log()[-3000:]
            time.sleep(1.0)
        for r in rows:
            head = _head(s3, "outage-rec", f"rec/{r['file']}")
            assert head is not None and head["ObjectLockMode"] == "COMPLIANCE"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
        env.update(s3.env())
        res = subprocess.run(
            [sys.executable, "-m", "siprec_recorder", "verify", "--config", str(cfg)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        text = httpx.get(f"http://{metrics_host}:{metrics_port}/metrics").text
        assert _metric(text, "siprec_store_uploaded_total") == 50
        assert _metric(text, "siprec_store_pending") == 0
    finally:
        rec.stop()


def test_config_check_refuses_a_url_as_recordings_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text('[storage]\nrecordings_dir = "s3://bucket/rec"\n', encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "siprec_recorder", "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "recordings_dir: a local folder" in res.stderr and "recordings_url" in res.stderr
    assert not (tmp_path / "s3:").exists()
