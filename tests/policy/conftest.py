"""Fixtures: a real SQLite database in ``tmp_path`` with the whole schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import siprec_recorder.policy.models  # noqa: F401 - declares the policy tables on Base
from siprec_recorder.storage.db import Database


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'index.sqlite3'}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
