"""Fixtures of the storage tests: a real SQLite index and recordings tree in ``tmp_path``.

Set ``SIPREC_TEST_DATABASE_URL`` (e.g. ``postgresql+asyncpg://rec@/siprec?host=/tmp/pg``) to run
every test that uses the ``db`` fixture against that database instead; its ``public`` schema
is dropped and recreated for each test, so point it at a throw-away database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import SqlIndex


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = os.environ.get("SIPREC_TEST_DATABASE_URL") or default_sqlite_url(tmp_path)
    database = Database(url)
    if database.is_postgresql:
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def index(db: Database) -> SqlIndex:
    return SqlIndex(db)


@pytest.fixture
def layout(tmp_path: Path) -> FileLayout:
    return FileLayout(tmp_path)
