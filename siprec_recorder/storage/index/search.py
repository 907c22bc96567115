"""Number search: which recordings a number took part in, as one SQL condition.

A number matches a recording when it is the recorded number, the other number or the
normalised number of *any* participant (a transferred call is found under each party).
Numbers are normalised by the caller (``siprec_recorder.phone``); several candidate forms may
be given. The CLI (:meth:`~.sql.SqlIndex.search`) and the portal both build their query with
:func:`filter_recordings`; the portal adds its own filters and the principal's access scope
as further conditions on the same statement, so that both find the same calls for a number.

Each column is looked up on its own index and the three lookups are united: an ``OR`` across
the three (with ``EXISTS``) makes SQLite scan every recording (27 s at 200,000 rows; this
form: milliseconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, false, select, union

from ..models import Recording, RecordingParticipant

__all__ = ["filter_recordings", "number_forms", "number_selects", "recordings_with_number"]


def number_forms(number: str | Sequence[str] | None) -> list[str]:
    """The distinct, stripped, non-empty forms of ``number`` (one string or several), sorted."""
    if number is None:
        return []
    forms: Iterable[str] = [number] if isinstance(number, str) else number
    return sorted({f.strip() for f in forms if f and f.strip()})


def number_selects(forms: Sequence[str]) -> list[Select[Any]]:
    """``SELECT`` of the ids of recordings where one of ``forms`` took part, one per column
    (recorded number, other number, participants), for a caller to ``union`` with more."""
    forms = list(forms)
    return [
        select(Recording.id.label("rid")).where(Recording.recorded_number.in_(forms)),
        select(Recording.id.label("rid")).where(Recording.other_number.in_(forms)),
        select(RecordingParticipant.recording_id.label("rid")).where(
            RecordingParticipant.number.in_(forms)
        ),
    ]


def recordings_with_number(forms: Sequence[str]) -> ColumnElement[bool]:
    """The condition "one of ``forms`` took part in this recording"."""
    matching = union(*number_selects(forms)).subquery()
    return Recording.id.in_(select(matching.c.rid))


def filter_recordings(
    stmt: Select[Any],
    *,
    number: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    states: Sequence[str] | None = None,
    among: Any = None,
    where: Iterable[ColumnElement[bool]] = (),
) -> Select[Any]:
    """``stmt`` (a select on :class:`Recording`) restricted to recordings that started in
    ``[since, until)``, in one of ``states``, where (when ``number`` is given) one of the forms
    of ``number`` took part, whose id is in ``among`` (a select of ids), and that meet every
    condition of ``where``. ``None`` means "any"; a ``number`` with no usable form matches
    nothing."""
    if number is not None:
        forms = number_forms(number)
        stmt = stmt.where(recordings_with_number(forms) if forms else false())
    if since is not None:
        stmt = stmt.where(Recording.start >= since)
    if until is not None:
        stmt = stmt.where(Recording.start < until)
    if states is not None:
        stmt = stmt.where(Recording.state.in_(list(states)))
    if among is not None:
        stmt = stmt.where(Recording.id.in_(among))
    for condition in where:
        stmt = stmt.where(condition)
    return stmt
