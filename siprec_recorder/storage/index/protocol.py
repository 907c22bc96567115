"""What the session layer (``siprec/``) needs from the index, and nothing more.

The SRS is typed against :class:`RecordingIndex`, so that a test can hand it any object with
these methods and so that the SQL behind them (:class:`~.sql.SqlIndex`) can change without the
SRS noticing. Reading and searching for people (the CLI, the portal) go through
:class:`~.sql.SqlIndex` and :mod:`.search` directly; they are not part of this surface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .types import DeclinedCall, FinishedRecording, NewRecording, ParticipantInfo

__all__ = ["RecordingIndex"]


class RecordingIndex(Protocol):
    """The index as the SRS uses it: rows of calls as they start, change, end or are refused,
    and the rows left open by a crash."""

    async def create_recording(self, rec: NewRecording) -> str:
        """Insert the row of a call being recorded (state ``recording``); returns its id."""
        ...

    async def finish_recording(self, rec_id: str, finished: FinishedRecording) -> None:
        """Record how the call ended (raises ``RecordingNotFound`` when there is no row)."""
        ...

    async def record_declined(self, call: DeclinedCall) -> str:
        """Write the row of a call that was not recorded, with the reason; returns its id."""
        ...

    async def update_participants(
        self, rec_id: str, participants: Sequence[ParticipantInfo | Mapping[str, Any]]
    ) -> None:
        """Replace the participant list (the full history, left ones too)."""
        ...

    async def mark_interrupted(
        self, rec_id: str, *, end: datetime | None = None, reason: str | None = None
    ) -> None:
        """Close a ``recording`` row whose media could not be recovered."""
        ...

    async def get(self, rec_id: str) -> dict[str, Any] | None:
        """One recording as a dict (see :func:`~.search.recording_to_dict`), or ``None``."""
        ...

    async def open_recordings(self, node_id: str | None = ...) -> list[dict[str, Any]]:
        """Rows still in state ``recording`` of ``node_id`` (after a crash: the ones to recover)."""
        ...
