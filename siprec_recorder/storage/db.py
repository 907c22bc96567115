"""The index database: an async SQLAlchemy engine plus a small versioned migration runner.

Theory of operation
-------------------
:class:`Database` wraps one ``AsyncEngine``. For SQLite (the default: one file in the
recordings folder) every new connection is set to ``journal_mode=WAL`` (readers never block
the writer), ``synchronous=FULL`` (a committed row survives a power cut: this is compliance
data), ``foreign_keys=ON`` and a busy timeout, so that several connections (and a CLI running
beside the server) wait for each other instead of failing. PostgreSQL
(``postgresql+asyncpg://``) needs none of that.

Migrations: the table ``schema_version`` holds one row per applied migration. :data:`MIGRATIONS`
is an ordered list of ``(version, description, function)``; :meth:`Database.open` applies every
migration not recorded yet, all in one transaction under the database's write lock. A migration is
a plain function of a synchronous ``Connection`` (run through ``run_sync``), so later ones can
use ``op``-style DDL (``ALTER TABLE ... ADD COLUMN``) or data fixes written with SQLAlchemy
Core.

Migration 1 creates every table of ``Base.metadata`` *as the metadata stands when it runs*.
Other packages (``policy/``, ``web/``) declare their tables on the same ``Base``; they are part
of the schema as long as their modules are imported before :meth:`Database.open`. Because an
install may first be opened without a package that was added later, ``open()`` always ends
with a base step ``Base.metadata.create_all(checkfirst=True)``: it creates tables that do not
exist yet and never touches an existing one. Changes to an *existing* table always need a new
numbered migration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .models import Base

__all__ = [
    "MIGRATIONS",
    "Database",
    "Migration",
    "SQLITE_BUSY_TIMEOUT_MS",
    "default_sqlite_url",
    "schema_version_table",
]

SQLITE_BUSY_TIMEOUT_MS = 15_000
_MIGRATION_LOCK_KEY = 0x5349_5052_4543_0001

Migration = tuple[int, str, Callable[[Connection], None]]

# Kept apart from Base.metadata: the runner needs it before any migration has run.
_runner_metadata = MetaData()
schema_version_table = Table(
    "schema_version",
    _runner_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(255), nullable=False),
    Column("applied_at", DateTime(timezone=False), nullable=False),
)


def _migration_1_initial(conn: Connection) -> None:
    """Create every table declared on ``Base`` (storage, plus any package imported so far)."""
    Base.metadata.create_all(conn, checkfirst=True)


def _migration_2_ledger_head(conn: Connection) -> None:
    """Create ``ledger_head`` and its one row, pointing at the current last ledger entry."""
    head = Base.metadata.tables["ledger_head"]
    ledger = Base.metadata.tables["ledger"]
    head.create(conn, checkfirst=True)
    if conn.execute(select(head.c.id)).first() is not None:
        return
    last = conn.execute(
        select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)
    ).first()
    seq, digest = (0, "0" * 64) if last is None else (int(last[0]), str(last[1]))
    conn.execute(insert(head).values(id=1, seq=seq, hash=digest))


#: The ordered migrations. Append new ones; never edit or reorder an applied one.
MIGRATIONS: list[Migration] = [
    (1, "initial schema: all tables of Base.metadata", _migration_1_initial),
    (2, "ledger_head: append lock and tail anchor of the ledger", _migration_2_ledger_head),
]


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

    async def open(self) -> None:
        """Create the database (SQLite: its folder too) and apply pending migrations."""
        if self._sqlite_path is not None:
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        await self.migrate()

    async def migrate(self) -> list[int]:
        """Apply pending migrations, then create missing tables; returns the versions applied.

        Everything runs in one transaction that first takes the database's write lock
        (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an advisory lock), so a failing migration
        leaves no trace and two processes starting together migrate one after the other.
        """
        applied: list[int] = []
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                # pysqlite would not open a transaction before DDL on its own.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.is_postgresql:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY}
                )
            try:
                await conn.run_sync(lambda c: _runner_metadata.create_all(c, checkfirst=True))
                done = set(await conn.scalars(select(schema_version_table.c.version)))
                for version, description, function in MIGRATIONS:
                    if version in done:
                        continue
                    await conn.run_sync(function)
                    await conn.execute(
                        insert(schema_version_table).values(
                            version=version,
                            description=description,
                            applied_at=datetime.now(UTC).replace(tzinfo=None),
                        )
                    )
                    applied.append(version)
                # Base step: tables declared (by any package) after the first migration.
                await conn.run_sync(lambda c: Base.metadata.create_all(c, checkfirst=True))
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        return applied

    async def schema_version(self) -> int:
        """The highest applied migration (0 when none)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(schema_version_table.c.version))
            return max((int(r[0]) for r in rows), default=0)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        """A new ``AsyncSession``: ``async with db.session() as s: ...; await s.commit()``."""
        return self._sessions()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"
