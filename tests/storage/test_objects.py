"""The store interface against a real S3 server (SeaweedFS) and against the folder.

Object Lock is the server's: an early delete is refused by the server, not by our code.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from siprec_recorder.storage.objects import (
    DeleteRefused,
    FolderStore,
    ObjectStore,
    S3Settings,
    S3Store,
    StoreError,
    parse_store_url,
)
from siprec_recorder.testing_s3 import SeaweedS3

KEY = "32470000001/2026/11/02/20261102T090000Z_out_32478999999_abc.mp3"
HELD_KEY = "32470000002/2026/11/03/20261103T090000Z_in_32478999999_def.mp3"


def _s3(server: SeaweedS3, bucket: str, lock: str = "compliance") -> S3Store:
    return S3Store(
        S3Settings(
            bucket=bucket,
            prefix="pfx/",
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            object_lock=lock,
        )
    )


@pytest.fixture(params=["folder", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    if request.param == "folder":
        s: ObjectStore = FolderStore(tmp_path / "store")
    else:
        server = request.getfixturevalue("s3_server")
        s = _s3(server, request.getfixturevalue("s3_bucket"))
    yield s
    await s.close()


def _file(tmp_path: Path, size: int = 200_000) -> tuple[Path, str, bytes]:
    data = os.urandom(size)
    path = tmp_path / "upload.mp3"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), data


def test_parse_store_url() -> None:
    assert parse_store_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_store_url("s3://bucket") == ("bucket", "")
    for bad in ("http://x/y", "s3:///nobucket", "s3://bad_bucket!/x"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


async def test_put_head_stream_ranges(store: ObjectStore, tmp_path: Path) -> None:
    path, sha, data = _file(tmp_path)
    until = datetime.now(UTC) + timedelta(days=30)
    info = await store.put_file(KEY, path, sha256=sha, retain_until=until, legal_hold=False)
    assert info.sha256 == sha and info.size == len(data)
    assert await store.head("nope/none.mp3") is None
    got = b"".join([c async for c in store.stream(KEY, 1000, 70_000)])
    assert got == data[1000:71_000]
    assert await store.read(KEY) == data
    if not store.is_local:
        assert info.lock_mode == "COMPLIANCE"
        assert info.retain_until is not None
        assert abs((info.retain_until - until).total_seconds()) < 1


async def test_checksum_mismatch_is_refused_by_the_store(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3(s3_server, s3_bucket)
    path, _sha, _ = _file(tmp_path)
    with pytest.raises(StoreError):
        await store.put_file(KEY, path, sha256="00" * 32, retain_until=None, legal_hold=False)
    assert await store.head(KEY) is None
    await store.close()


async def test_object_lock_refuses_early_delete_then_allows_it(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3(s3_server, s3_bucket)
    path, sha, _ = _file(tmp_path, 1000)
    until = datetime.now(UTC) + timedelta(seconds=6)
    await store.put_file(KEY, path, sha256=sha, retain_until=until, legal_hold=False)
    with pytest.raises(DeleteRefused):
        await store.delete(KEY)
    assert (await store.head(KEY)) is not None
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.5)
    await store.delete(KEY)
    assert await store.head(KEY) is None
    await store.close()


async def test_legal_hold_and_raised_retention(
    s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3(s3_server, s3_bucket)
    path, sha, _ = _file(tmp_path, 1000)
    soon = datetime.now(UTC) + timedelta(seconds=8)
    await store.put_file(HELD_KEY, path, sha256=sha, retain_until=soon, legal_hold=False)
    later = datetime.now(UTC) + timedelta(days=400)
    assert await store.protect(HELD_KEY, later, True)
    info = await store.head(HELD_KEY)
    assert info is not None and info.legal_hold
    assert info.retain_until is not None and abs((info.retain_until - later).total_seconds()) < 1
    # Retention is never lowered by protect.
    assert await store.protect(HELD_KEY, soon, True)
    info = await store.head(HELD_KEY)
    assert info is not None and info.retain_until is not None and info.retain_until > soon
    with pytest.raises(DeleteRefused):
        await store.delete(HELD_KEY)
    assert not await store.protect("missing/key.mp3", later, False)
    await store.close()


async def test_unreachable_store_is_a_store_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3Store(
        S3Settings("b", "", f"http://127.0.0.1:{port}", "us-east-1", "k", "s", "", timeout=2.0)
    )
    path, sha, _ = _file(tmp_path, 10)
    with pytest.raises(StoreError):
        await store.put_file(HELD_KEY, path, sha256=sha, retain_until=None, legal_hold=False)
    await store.close()
