"""Cluster fixtures: a fresh index database on SQLite and on PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import pytest

from siprec_recorder.storage.db import Database


@pytest.fixture
def db_url(shared_url: str) -> str:
    return shared_url


@pytest.fixture
def db(shared_db: Database) -> Database:
    return shared_db
