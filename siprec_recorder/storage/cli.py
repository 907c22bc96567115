"""``siprec-recorder db upgrade | current | history``: the index schema, by hand.

``serve`` upgrades on start only where ``[storage] auto_migrate`` allows it (SQLite by
default); on PostgreSQL an operator runs ``db upgrade`` on purpose, from any one node (the
others wait on the same advisory lock and find nothing left to do).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``db`` command to the top-level subparsers ``sub``."""
    p = sub.add_parser("db", help="index database schema (migrations)")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    dsub = p.add_subparsers(dest="db_command", required=True)
    for name, help_, fn in (
        ("upgrade", "upgrade the schema to the newest revision", _upgrade),
        ("current", "print the schema revision of the database", _current),
        ("history", "list the revisions this version knows", _history),
    ):
        child = dsub.add_parser(name, help=help_)
        child.add_argument("--config", "-c", default=argparse.SUPPRESS)
        child.set_defaults(run=fn)


def _db(args: argparse.Namespace) -> Any:
    from ..cli import _load
    from .db import Database

    config = _load(args)
    config.recordings_path.mkdir(parents=True, exist_ok=True)
    return Database(config.database_url)


def _upgrade(args: argparse.Namespace) -> int:
    async def go() -> int:
        db = _db(args)
        try:
            before, after = await db.migrate(upgrade=True)
        finally:
            await db.close()
        if before == after:
            print(f"ok: the schema is at {after}, the newest revision; nothing to do")
        else:
            print(f"ok: upgraded the schema from {before or 'nothing'} to {after}")
        return 0

    return asyncio.run(go())


def _current(args: argparse.Namespace) -> int:
    from .migrations import head_revision

    async def go() -> int:
        db = _db(args)
        try:
            rev = await db.schema_revision()
        finally:
            await db.close()
        head = head_revision()
        state = "up to date" if rev == head else f"this version's head is {head}"
        print(f"{rev or 'none'} ({state})")
        return 0

    return asyncio.run(go())


def _history(args: argparse.Namespace) -> int:
    from .migrations import history

    for rev, down, title in history():
        print(f"{down or '<base>'} -> {rev}  {title}")
    return 0
