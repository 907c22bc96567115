"""Labels, cases and which recordings are in a case: tables every upper layer reads.

Labels tag recordings; a case owns exactly one label, and a recording is in a case when it
carries the case's label. The portal (``web``) manages them, and the compliance layer reads
them to export a case or put it on legal hold, so they live here, in the bottom layer, where
both can import them without ``compliance`` depending on ``web`` (DESIGN.md section 2). The
tables keep their ``web_`` names: moving the classes changed no schema.

What a case's access settings mean (``owner`` / ``admins`` / ``everyone`` per right) is the
portal's rule and stays in :mod:`siprec_recorder.services.access`; this module only stores them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, Select, String, Text, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, UTCDateTime

__all__ = ["Case", "Label", "RecordingLabel", "case_recording_ids", "find_case"]


class Label(Base):
    """A label: a title and a colour (``#rrggbb``)."""

    __tablename__ = "web_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    colour: Mapped[str] = mapped_column(String(7))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordingLabel(Base):
    """A label on a recording."""

    __tablename__ = "web_recording_labels"
    __table_args__ = (UniqueConstraint("recording_id", "label_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(64), index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("web_labels.id"), index=True)
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Case(Base):
    """A case: a title, its label and who may list, play and (un)label its conversations."""

    __tablename__ = "web_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    label_id: Mapped[int] = mapped_column(ForeignKey("web_labels.id"), unique=True)
    owner: Mapped[str] = mapped_column(String(100))
    list_access: Mapped[str] = mapped_column(String(10), default="admins")
    play_access: Mapped[str] = mapped_column(String(10), default="admins")
    label_access: Mapped[str] = mapped_column(String(10), default="owner")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


async def find_case(session: AsyncSession, ref: str | int) -> Case | None:
    """The case whose id is ``ref`` (an int, or a string of digits) or whose title is ``ref``."""
    if isinstance(ref, int):
        return await session.get(Case, ref)
    case_id = int(ref) if ref.isdigit() else -1
    return await session.scalar(select(Case).where((Case.title == ref) | (Case.id == case_id)))


def case_recording_ids(case: Case) -> Select[Any]:
    """``SELECT recording_id`` of the recordings in ``case`` (those carrying its label), for
    use in ``Recording.id.in_(...)``."""
    return select(RecordingLabel.recording_id).where(RecordingLabel.label_id == case.label_id)
