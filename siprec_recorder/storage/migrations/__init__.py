"""Schema migrations of the index database (Alembic), shipped inside the package.

Theory of operation
-------------------
Every table of every package (storage, policy, web, compliance) is under one Alembic history in
``versions/``. :meth:`siprec_recorder.storage.db.Database.open` calls :func:`check_and_upgrade`
on a connection that already holds the database's write lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL a transaction-scoped advisory lock), so several nodes starting together migrate once:
the first upgrades, the others wait, then find the head already there.

A database whose revision this code does not know is newer than this recorder: it is refused,
never touched. A database behind the head is upgraded when ``auto_migrate`` allows it, else
refused with the command that upgrades it. A database of release 0.1.0 (tables made by
``create_all``, no ``alembic_version``) is simply a database at no revision: the baseline creates
the tables it lacks and leaves the others as they are.

How to add a revision: see README.md in this folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

__all__ = [
    "SchemaError",
    "alembic_config",
    "check_and_upgrade",
    "current_revision",
    "head_revision",
    "history",
]

HERE = Path(__file__).resolve().parent

# Alembic tells at INFO which DDL mode it assumes, on every start; the recorder logs the
# upgrade itself.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
log = logging.getLogger("siprec_recorder.storage")


class SchemaError(Exception):
    """The database's schema is not one this recorder can use; the message says what to do."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the shipped scripts, optionally bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _scripts().get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def history() -> list[tuple[str, str | None, str]]:
    """``(revision, down_revision, title)`` from the newest to the baseline."""
    out: list[tuple[str, str | None, str]] = []
    for script in _scripts().walk_revisions():
        down = script.down_revision
        title = (script.doc or "").strip().splitlines()[0] if script.doc else ""
        out.append((script.revision, down if isinstance(down, str) else None, title))
    return out


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None``: no Alembic history yet)."""
    return MigrationContext.configure(conn).get_current_revision()


def check_and_upgrade(conn: Connection, *, upgrade: bool) -> tuple[str | None, str]:
    """Refuse an unusable schema; upgrade to the head when ``upgrade``; ``(before, after)``.

    ``conn`` must already hold the database's write lock and be inside a transaction that
    the caller commits.
    """
    scripts = _scripts()
    head = head_revision()
    current = current_revision(conn)
    if current is not None:
        try:
            scripts.get_revision(current)
        except Exception:
            raise SchemaError(
                f"the database schema (revision {current}) is newer than this siprec-recorder "
                f"knows (head {head}): run a siprec-recorder at least as new as the one that "
                "upgraded it"
            ) from None
    if current == head:
        return current, head
    empty = current is None and not inspect(conn).get_table_names()
    if not upgrade:
        if current is not None:
            have = f"is at revision {current}"
        elif not empty:
            have = "predates schema migrations (release 0.1.0)"
        else:
            have = "has no schema yet"
        raise SchemaError(
            f"the database {have}, this siprec-recorder needs {head}: run "
            "`siprec-recorder db upgrade` (or set [storage] auto_migrate = true)"
        )
    command.upgrade(alembic_config(conn), "head")
    if empty:
        log.info("index schema created at revision %s", head)
    else:
        log.info("index schema upgraded from %s to %s", current or "release 0.1.0", head)
    return current, head
