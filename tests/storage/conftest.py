"""Fixtures of the storage tests: a real SQLite index and recordings tree in ``tmp_path``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import SqlIndex


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(default_sqlite_url(tmp_path))
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
