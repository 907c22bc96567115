"""Cluster fixtures: a fresh index database on SQLite and on PostgreSQL (see tests/pgtest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from siprec_recorder.storage.db import Database, default_sqlite_url
from tests.storage.conftest import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await fresh_database(db_url)
    try:
        yield database
    finally:
        await database.close()
