"""The schema's one Alembic history: fresh databases, release 0.1.0 upgraded, refusals, nodes.

The release fixture (``data/release-0.1.0``) was made by release 0.1.0's own code (see
``data/make_release_0_1_0.py``): an SQL dump of its index and the MP3s it points at.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from siprec_recorder.storage.db import Database, SchemaError, default_sqlite_url
from siprec_recorder.storage.migrations import head_revision, history
from siprec_recorder.storage.migrations.metadata import (
    include_object,
    is_full_text,
    target_metadata,
)
from siprec_recorder.testing import RecorderProcess, write_config

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": include_object}
    )
    return list(compare_metadata(ctx, target_metadata()))


def _run(
    *args: str, config: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "siprec_recorder", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=config.parent,
    )


def _release_copy(workdir: Path) -> Path:
    """A recordings folder of release 0.1.0 in ``workdir``: files plus the index from its dump."""
    root = workdir / "recordings"
    shutil.copytree(RELEASE / "recordings", root)
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.executescript((RELEASE / "index.sql").read_text(encoding="utf-8"))
    conn.close()
    return root


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    names = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if r[0] not in ("schema_version", "alembic_version")
    ]
    counts = {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    conn.close()
    return counts


def _dump_rows(
    path: Path, table: str, columns: list[str] | None = None
) -> list[tuple[object, ...]]:
    """Every row of ``table`` (only ``columns`` when given: later revisions add columns)."""
    conn = sqlite3.connect(path)
    what = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    rows = list(conn.execute(f'SELECT {what} FROM "{table}" ORDER BY 1'))
    conn.close()
    return rows


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    names = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    conn.close()
    return names


def test_history_is_linear_from_the_baseline() -> None:
    revs = history()
    assert revs[-1][1] is None and revs[-1][0] == "0001"
    assert revs[0][0] == head_revision()
    for (_rev, down, _), (older, _, _) in zip(revs, revs[1:], strict=False):
        assert down == older


async def test_fresh_database_matches_the_models(tmp_path: Path) -> None:
    """A missing migration fails here: the models and the head must describe one schema."""
    db = Database(default_sqlite_url(tmp_path))
    await db.open()
    try:
        assert await db.schema_revision() == head_revision()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        names = {n for n in names if not is_full_text(n)}
        assert set(target_metadata().tables) | {"alembic_version"} == names
    finally:
        await db.close()


def test_release_0_1_0_upgrades_with_nothing_lost(tmp_path: Path) -> None:
    root = _release_copy(tmp_path)
    index = root / "index.sqlite3"
    before = _counts(index)
    assert before["recordings"] == 3 and before["ledger"] == 14
    assert before["policy_numbers"] == 3 and before["web_cases"] == 1
    ledger_before = _dump_rows(index, "ledger")
    recording_columns = _columns(index, "recordings")
    recordings_before = _dump_rows(index, "recordings")
    config = write_config(tmp_path)

    res = _run("db", "current", config=config)
    assert res.returncode == 0 and res.stdout.startswith("none ("), res.stdout + res.stderr
    res = _run("db", "upgrade", config=config)
    assert res.returncode == 0, res.stderr
    assert f"from nothing to {head_revision()}" in res.stdout

    after = _counts(index)
    # every table of the release keeps every row; later revisions only add (empty) tables
    assert {n: after[n] for n in before} == before
    assert all(after[n] == 0 for n in set(after) - set(before) if not is_full_text(n))
    assert _dump_rows(index, "ledger") == ledger_before
    assert _dump_rows(index, "recordings", recording_columns) == recordings_before
    assert _dump_rows(index, "recordings", ["node_id"]) == [(None,)] * 3  # added by 0004
    conn = sqlite3.connect(index)
    assert conn.execute("SELECT seq FROM ledger_head").fetchone()[0] == 14
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "schema_version" not in tables

    res = _run("verify", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ledger chain is intact" in res.stdout
    # The upgraded index is the release's data, readable by today's code.
    res = _run("search", "--number", "+32470000001", "--json", config=config)
    assert res.returncode == 0 and res.stdout.count('"recorded_number": "+32470000001"') == 2
    res = _run("numbers", "list", config=config)
    assert res.returncode == 0 and "+32470000003" in res.stdout, res.stdout + res.stderr

    res = _run("db", "upgrade", config=config)
    assert res.returncode == 0 and "nothing to do" in res.stdout


def test_release_without_portal_tables_gets_them(tmp_path: Path) -> None:
    """0.1.0 made the portal's tables only once the portal had run: the baseline adds them."""
    root = _release_copy(tmp_path)
    conn = sqlite3.connect(root / "index.sqlite3")
    for name in (
        "web_access_request_events",
        "web_access_requests",
        "web_recording_labels",
        "web_cases",
        "web_labels",
        "web_sessions",
        "web_pending_logins",
    ):
        conn.execute(f'DROP TABLE "{name}"')
    conn.commit()
    conn.close()
    config = write_config(tmp_path)
    assert _run("db", "upgrade", config=config).returncode == 0
    assert _counts(root / "index.sqlite3")["web_cases"] == 0
    assert _run("verify", config=config).returncode == 0


def test_serve_upgrades_release_0_1_0_on_start(tmp_path: Path) -> None:
    root = _release_copy(tmp_path)
    recorder = RecorderProcess(tmp_path, write_config(tmp_path), root)
    recorder.start()
    try:
        assert len(recorder.search()) == 3
    finally:
        recorder.stop()
    conn = sqlite3.connect(root / "index.sqlite3")
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
    conn.close()


def test_serve_refuses_an_old_schema_without_auto_migrate(tmp_path: Path) -> None:
    root = _release_copy(tmp_path)
    before = _counts(root / "index.sqlite3")
    config = write_config(tmp_path, storage={"auto_migrate": False})
    res = _run("serve", config=config)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "predates schema migrations" in lines[0] and "siprec-recorder db upgrade" in lines[0]
    assert _counts(root / "index.sqlite3") == before


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    root = _release_copy(tmp_path)
    config = write_config(tmp_path)
    assert _run("db", "upgrade", config=config).returncode == 0
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    before = _counts(root / "index.sqlite3")
    for args in (("serve",), ("db", "upgrade"), ("verify",)):
        res = _run(*args, config=config)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert "revision 9999_from_the_future) is newer than this siprec-recorder" in lines[0]
    assert _counts(root / "index.sqlite3") == before


async def test_open_raises_schema_error_for_unknown_revision(tmp_path: Path) -> None:
    db = Database(default_sqlite_url(tmp_path))
    await db.open()
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'abc'"))
    with pytest.raises(SchemaError, match="newer than this siprec-recorder knows"):
        await db.open()
    await db.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database of this test's own (:mod:`tests.pgtest`)."""
    from tests.pgtest import create_private_database, drop_database, server_url

    server = server_url()
    if server is None:
        pytest.skip("no PostgreSQL: set SIPREC_TEST_DATABASE_URL or install postgresql")
    url = create_private_database(server)
    try:
        yield url
    finally:
        drop_database(url, server)


def test_postgresql_nodes_starting_together_migrate_once(tmp_path: Path, pg_database: str) -> None:
    config = write_config(tmp_path, storage={"database_url": pg_database})
    # PostgreSQL does not upgrade on its own: a node refuses the empty schema.
    res = _run("verify", config=config)
    assert res.returncode == 2 and "db upgrade" in res.stderr, res.stderr
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "siprec_recorder", "db", "upgrade", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    upgraded = [o for o, _ in outs if "upgraded the schema from nothing" in o]
    idle = [o for o, _ in outs if "nothing to do" in o]
    assert len(upgraded) == 1 and len(idle) == 3, outs

    import asyncio

    async def check() -> None:
        db = Database(pg_database)
        try:
            await db.open(auto_migrate=False)
            assert await db.schema_revision() == head_revision()
            async with db.engine.connect() as conn:
                assert await conn.run_sync(_diff) == []
                n = await conn.scalar(text("SELECT count(*) FROM alembic_version"))
            assert n == 1
        finally:
            await db.close()

    asyncio.run(check())
    res = _run("verify", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
