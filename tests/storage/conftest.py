"""Fixtures of the storage tests: a real index and recordings tree in ``tmp_path``.

Every test that uses the ``db`` fixture runs twice: on SQLite (a file in ``tmp_path``) and on
PostgreSQL (the session's private database, see :mod:`tests.pgtest`; skipped when
``SIPREC_TEST_DATABASE_URL`` is not set). The PostgreSQL ``public`` schema is dropped and
recreated for each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_recorder.storage.db import Database
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import SqlIndex


@pytest.fixture
def db_url(shared_url: str) -> str:
    return shared_url


@pytest.fixture
def db(shared_db: Database) -> Database:
    return shared_db


@pytest.fixture
def index(db: Database) -> SqlIndex:
    return SqlIndex(db)


@pytest.fixture
def layout(tmp_path: Path) -> FileLayout:
    return FileLayout(tmp_path)
