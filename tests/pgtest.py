"""PostgreSQL for the tests: one private database per test session on the server named by
``SIPREC_TEST_DATABASE_URL``.

``SIPREC_TEST_DATABASE_URL`` names a server and a user that may create databases, e.g.
``postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/siprec_test``. The session connects to
the server's ``postgres`` database, creates one of its own, ``<the URL's database name>_<random
hex>`` (``siprec_test_1f2e...``), hands out its URL, and drops it at the end.

Without the variable, where Debian's PostgreSQL server binaries are installed, the first test
that asks starts a private server for this pytest process (a temporary folder, a free loopback
port, trust authentication; as the ``postgres`` user when running as root, which ``initdb``
refuses to be), stopped when the process ends. With neither, the PostgreSQL variants are
skipped. CI sets the variable: ``scripts/run-tests`` starts one server for the whole run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from siprec_recorder.storage.db import Database

__all__ = ["ENV", "create_private_database", "drop_database", "fresh_database", "server_url"]

ENV = "SIPREC_TEST_DATABASE_URL"


_private: list[str] = []  # the URL of this process's own server, once started


def server_url() -> str | None:
    """``SIPREC_TEST_DATABASE_URL``, else this process's private server (started on first
    use), else None (no PostgreSQL binaries or no asyncpg)."""
    env = os.environ.get(ENV)
    if env:
        return env
    if not _private:
        url = _start_private_server()
        if url is None:
            return None
        _private.append(url)
    return _private[0]


def _start_private_server() -> str | None:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return None
    if not bins:
        return None
    bindir = Path(bins[-1]).parent
    # Not under pytest's own folder: that one is private to root, and the server runs as
    # postgres.
    root = Path(tempfile.mkdtemp(prefix="siprec-test-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            return None
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    # The server keeps pg_ctl's output open: it writes to its own log, never to a pipe.
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l"]
        + [str(root / "server.log"), "start"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )

    def stop() -> None:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/siprec_test"


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
