"""The index database: an async SQLAlchemy engine, its SQLite settings and its migrations.

Theory of operation
-------------------
:class:`Database` wraps one ``AsyncEngine``. For SQLite (the default: one file in the
recordings folder) every new connection is set to ``journal_mode=WAL`` (readers never block
the writer), ``synchronous=FULL`` (a committed row survives a power cut: this is compliance
data), ``foreign_keys=ON`` and a busy timeout, so that several connections (and a CLI running
beside the server) wait for each other instead of failing. PostgreSQL
(``postgresql+asyncpg://``) needs none of that.

Migrations: the schema of every package comes from one Alembic history shipped in
:mod:`.migrations`. :meth:`Database.open` takes the database's write lock (SQLite
``BEGIN IMMEDIATE``, PostgreSQL an advisory lock for the transaction), refuses a schema newer
than this code knows, and upgrades an older one when ``auto_migrate`` is on (else refuses it
with the command to run), all in one transaction: a failing migration leaves no trace on
PostgreSQL, and two nodes starting together migrate once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .migrations import SchemaError, check_and_upgrade, current_revision

__all__ = [
    "Database",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SchemaError",
    "default_sqlite_url",
]

SQLITE_BUSY_TIMEOUT_MS = 15_000
_MIGRATION_LOCK_KEY = 0x5349_5052_4543_0001


def default_sqlite_url(recordings_dir: Path | str) -> str:
    """``sqlite+aiosqlite:///<absolute dir>/index.sqlite3``."""
    path = Path(recordings_dir).resolve() / "index.sqlite3"
    return f"sqlite+aiosqlite:///{path}"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class Database:
    """The index database at ``url``; call :meth:`open` before use and :meth:`close` after."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect_name = parsed.get_backend_name()
        self._sqlite_path: Path | None = None
        connect_args: dict[str, Any] = {}
        if self.dialect_name == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self._sqlite_path = Path(database)
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
        self.engine: AsyncEngine = create_async_engine(
            url, echo=echo, connect_args=connect_args, pool_pre_ping=False
        )
        if self.dialect_name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect_name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect_name == "postgresql"

    async def open(self, *, auto_migrate: bool = True) -> None:
        """Create the database (SQLite: its folder too); check and, if allowed, upgrade it.

        Raises :class:`SchemaError` (one line saying what to do) for a schema newer than this
        code knows, or an older one when ``auto_migrate`` is off.
        """
        if self._sqlite_path is not None:
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        await self.migrate(upgrade=auto_migrate)

    async def migrate(self, *, upgrade: bool = True) -> tuple[str | None, str]:
        """Check the schema and upgrade it to the head: ``(revision before, revision after)``."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                # pysqlite would not open a transaction before DDL on its own.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.is_postgresql:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY}
                )
            try:
                result = await conn.run_sync(lambda c: check_and_upgrade(c, upgrade=upgrade))
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        return result

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(current_revision)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        """A new ``AsyncSession``: ``async with db.session() as s: ...; await s.commit()``."""
        return self._sessions()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"
