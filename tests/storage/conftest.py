"""Fixtures of the storage tests: a real index and recordings tree in ``tmp_path``.

Every test that uses the ``db`` fixture runs twice: on SQLite (a file in ``tmp_path``) and on
PostgreSQL (the session's private database, see :mod:`tests.pgtest`; skipped when
``SIPREC_TEST_DATABASE_URL`` is not set). The PostgreSQL ``public`` schema is dropped and
recreated for each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import SqlIndex


async def fresh_database(url: str) -> Database:
    """``url`` opened, with an empty schema first when it is PostgreSQL."""
    database = Database(url)
    if database.is_postgresql:
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await database.engine.dispose()  # cached type information of the old schema
    await database.open()
    return database


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


@pytest.fixture
def index(db: Database) -> SqlIndex:
    return SqlIndex(db)


@pytest.fixture
def layout(tmp_path: Path) -> FileLayout:
    return FileLayout(tmp_path)
