"""Fixtures of the transcription tests: the integration recorder, and a PostgreSQL.

``pg_url`` is a database private to this session on the PostgreSQL of :mod:`tests.pgtest`
(``SIPREC_TEST_DATABASE_URL``, or a private server); empty when neither is available.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import recorder_factory
from tests.pgtest import create_private_database, drop_database, server_url

__all__ = ["pg_url", "recorder_factory"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    server = server_url()
    if server is None:
        yield ""
        return
    url = create_private_database(server)
    try:
        yield url
    finally:
        drop_database(url, server)
