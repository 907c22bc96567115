"""Tables of the compliance package, on the product's one declarative ``Base``.

* ``retention_rules``: a per-number floor on retention. A recording in which ``number`` takes
  part (recorded number, other number or any participant) is kept at least until ``until``,
  whether it was made before or after the rule. A rule is only ever raised, never lowered,
  so no recording's retention is ever shortened by it. Every change is also a ledger event.

The table comes from the migrations (:mod:`siprec_recorder.storage.migrations`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from siprec_recorder.storage.models import Base, UTCDateTime, utcnow

__all__ = ["RetentionRule"]


class RetentionRule(Base):
    """Recordings of ``number`` are kept at least until ``until``."""

    __tablename__ = "retention_rules"

    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    set_by: Mapped[str] = mapped_column(String(255), nullable=False)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
