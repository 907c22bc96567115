"""Schema creation, SQLite settings and how the Alembic migrations run on open."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from siprec_recorder.storage import migrations
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.migrations import head_revision
from siprec_recorder.storage.models import Base

STORAGE_TABLES = {
    "recordings",
    "recording_participants",
    "recording_streams",
    "dtmf_digits",
    "ledger",
    "users",
    "alembic_version",
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


def test_default_sqlite_url(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/index.sqlite3"


async def test_open_creates_schema_and_sqlite_settings(tmp_path: Path) -> None:
    db = Database(default_sqlite_url(tmp_path / "sub"))
    await db.open()
    try:
        assert (tmp_path / "sub" / "index.sqlite3").is_file()
        assert STORAGE_TABLES <= await _tables(db)
        assert await db.schema_revision() == head_revision()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() > 0
        async with db.engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("recordings"))
        cols = {tuple(i["column_names"]) for i in indexes}
        assert ("recorded_number", "start") in cols
        assert ("other_number", "start") in cols
        assert ("start",) in cols
    finally:
        await db.close()


async def test_open_is_idempotent(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    for _ in range(3):
        db = Database(url)
        await db.open()
        assert await db.migrate() == (head_revision(), head_revision())
        await db.close()
    db = Database(url)
    await db.open()
    async with db.engine.connect() as conn:
        n = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
    assert n == 1
    await db.close()


def _with_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    """The shipped history plus one more revision (``body`` is its upgrade), as a developer
    adds one: a file in versions/ whose down_revision is the current head."""
    scripts = tmp_path / "migrations"
    shutil.copytree(
        Path(migrations.__file__).parent, scripts, ignore=shutil.ignore_patterns("__pycache__")
    )
    new = f"{int(head_revision()) + 1:04d}"
    (scripts / "versions" / f"{new}_test.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "{new}"
            down_revision = "{head_revision()}"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
            """
        )
        + textwrap.indent(textwrap.dedent(body), "    "),
        encoding="utf-8",
    )
    monkeypatch.setattr(migrations, "HERE", scripts)
    return new


async def test_a_later_revision_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = default_sqlite_url(tmp_path / "db")
    db = Database(url)
    await db.open()
    await db.close()
    new = _with_revision(
        tmp_path,
        monkeypatch,
        """
        op.execute("CREATE TABLE IF NOT EXISTS test_runs (n INTEGER)")
        op.execute("INSERT INTO test_runs VALUES (1)")
        with op.batch_alter_table("recordings") as batch:
            batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        """,
    )
    for _ in range(2):
        db = Database(url)
        await db.open()
        assert await db.schema_revision() == new
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("recordings"))
            runs = (await conn.execute(text("SELECT count(*) FROM test_runs"))).scalar()
        assert "note" in {c["name"] for c in columns} and runs == 1
        await db.close()


async def test_foreign_keys_enforced(db: Database) -> None:
    async with db.engine.begin() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(
                text(
                    "INSERT INTO recording_participants (recording_id, participant_id) "
                    "VALUES ('nope', 'p')"
                )
            )


async def test_baseline_points_a_missing_head_at_an_existing_chain(tmp_path: Path) -> None:
    from siprec_recorder.storage.ledger import append_event, verify_chain

    url = default_sqlite_url(tmp_path)
    db = Database(url)
    await db.open()
    for i in range(3):
        async with db.session() as s:
            await append_event(s, actor="t", action="a", subject=str(i), details={})
            await s.commit()
    # An install of 0.1.0 whose runner had not made ledger_head yet.
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE ledger_head"))
        await conn.execute(text("DROP TABLE alembic_version"))
    await db.close()
    db = Database(url)
    await db.open()
    async with db.session() as s:
        assert await verify_chain(s) == []
        await append_event(s, actor="t", action="a", subject="after", details={})
        await s.commit()
    async with db.session() as s:
        assert await verify_chain(s) == []
    await db.close()


def test_schema_compiles_for_postgresql() -> None:
    """Only portable types: every table's DDL compiles for PostgreSQL (asyncpg) too."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert table.name in ddl
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=dialect))
    recordings = str(CreateTable(Base.metadata.tables["recordings"]).compile(dialect=dialect))
    assert "TIMESTAMP WITH TIME ZONE" in recordings and "JSON" in recordings


def test_postgresql_url_builds_an_engine_lazily() -> None:
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:
        pytest.skip("asyncpg not installed")
    db = Database("postgresql+asyncpg://u:secret@db.example/rec")
    assert db.is_postgresql and not db.is_sqlite
    assert "secret" not in repr(db)


async def test_failing_migration_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = default_sqlite_url(tmp_path / "db")
    db = Database(url)
    await db.open()
    await db.close()
    _with_revision(
        tmp_path,
        monkeypatch,
        """
        op.execute("CREATE TABLE test_half_done (x INTEGER)")
        raise RuntimeError("migration bug")
        """,
    )
    db = Database(url)
    with pytest.raises(RuntimeError, match="migration bug"):
        await db.open()
    assert "test_half_done" not in await _tables(db)
    assert await db.schema_revision() == "0005"
    await db.close()


async def test_processes_opening_together_migrate_once(tmp_path: Path) -> None:
    import asyncio

    url = default_sqlite_url(tmp_path)
    dbs = [Database(url) for _ in range(4)]
    await asyncio.gather(*(d.open() for d in dbs))
    async with dbs[0].engine.connect() as conn:
        n = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
        heads = (await conn.execute(text("SELECT count(*) FROM ledger_head"))).scalar()
    assert n == 1 and heads == 1
    for d in dbs:
        await d.close()
