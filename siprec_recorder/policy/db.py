"""Small database helpers of the policy layer: one-transaction scopes and counters.

The policy tables come from the migrations (:mod:`siprec_recorder.storage.migrations`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siprec_recorder.storage.db import Database

from .models import COUNTER_POLICY_VERSION, PolicyCounter

__all__ = [
    "bump_counter",
    "bump_policy_version",
    "read_counter",
    "transaction",
]


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[AsyncSession]:
    """A session whose work commits on success and rolls back on any error."""
    async with db.session() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def bump_counter(session: AsyncSession, name: str, by: int = 1) -> None:
    """Add ``by`` to counter ``name`` (created if missing), in ``session``'s transaction."""
    result = await session.execute(
        update(PolicyCounter)
        .where(PolicyCounter.name == name)
        .values(value=PolicyCounter.value + by)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.add(PolicyCounter(name=name, value=by))
        await session.flush()


async def read_counter(session: AsyncSession, name: str) -> int:
    """The value of counter ``name`` (0 if it was never bumped)."""
    value = await session.scalar(select(PolicyCounter.value).where(PolicyCounter.name == name))
    return int(value or 0)


async def bump_policy_version(session: AsyncSession) -> None:
    """Mark the policy as changed so that every engine reloads its snapshot."""
    await bump_counter(session, COUNTER_POLICY_VERSION)
