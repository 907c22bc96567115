"""Fixtures every test package may use: a private PostgreSQL database per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgtest import create_private_database, drop_database, server_url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL database private to this test session (skips without one)."""
    server = server_url()
    if server is None:
        pytest.skip("PostgreSQL variant: set SIPREC_TEST_DATABASE_URL (scripts/run-tests does)")
    url = create_private_database(server)
    try:
        yield url
    finally:
        drop_database(url, server)
