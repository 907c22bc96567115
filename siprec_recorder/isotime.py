"""Instants as the index, reports, sidecars and the CLI write them: ISO 8601, UTC, ``Z``.

A leaf utility any layer may import. A naive ``datetime`` is taken as UTC (what SQLite hands
back for a ``DateTime(timezone=True)`` column); a number is a POSIX time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["utc_iso"]


@overload
def utc_iso(value: datetime | float) -> str: ...


@overload
def utc_iso(value: None) -> None: ...


@overload
def utc_iso(value: datetime | float | None) -> str | None: ...


def utc_iso(value: datetime | float | None) -> str | None:
    """``2026-03-02T09:30:01.500000Z``; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
