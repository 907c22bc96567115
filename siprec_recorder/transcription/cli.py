"""``siprec-recorder search --text``: recordings by what was said, with the hits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..storage.db import Database
from ..storage.index import SqlIndex
from . import models as _tables  # noqa: F401  (the tables exist before the first query)
from .search import hits_for, matching_recordings, parse_text_query

__all__ = ["search_by_text"]


async def search_by_text(
    db: Database,
    text: str,
    *,
    number: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Recordings (as ``search`` prints them) whose transcript matches ``text``, newest
    first, each with ``hits``; the number and time filters apply as without ``--text``."""
    query = parse_text_query(text)
    rows = await SqlIndex(db).search(
        number=number,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        among=matching_recordings(query, db.engine.dialect.name),
    )
    async with db.session() as session:
        hits = await hits_for(session, query, [r["id"] for r in rows])
    for r in rows:
        r["hits"] = hits[r["id"]]
    return rows
