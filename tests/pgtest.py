"""PostgreSQL for the tests: one private database per test session on the server named by
``SIPREC_TEST_DATABASE_URL``.

``SIPREC_TEST_DATABASE_URL`` names a server and a user that may create databases, e.g.
``postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/siprec_test``. The session connects to
the server's ``postgres`` database, creates one of its own, ``<the URL's database name>_<random
hex>`` (``siprec_test_1f2e...``), hands out its URL, and drops it at the end. Without the
variable the PostgreSQL variants of the tests are skipped (CI sets it: ``scripts/run-tests``
starts a server).
"""

from __future__ import annotations

import asyncio
import os
import secrets

from sqlalchemy.engine import make_url

__all__ = ["ENV", "create_private_database", "drop_database", "server_url"]

ENV = "SIPREC_TEST_DATABASE_URL"


def server_url() -> str | None:
    return os.environ.get(ENV) or None


def _admin_dsn(url: str) -> tuple[str, str]:
    u = make_url(url)
    base = u.database or "postgres"
    dsn = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    return dsn, base


def create_private_database(url: str) -> str:
    """Create ``<base>_<hex>`` next to ``url``'s database; returns its SQLAlchemy URL."""
    import asyncpg

    dsn, base = _admin_dsn(url)
    name = f"{base}_{secrets.token_hex(4)}".lower()

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(go())
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, admin_url: str) -> None:
    import asyncpg

    dsn, _ = _admin_dsn(admin_url)
    name = make_url(url).database

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(go())
