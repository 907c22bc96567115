"""Tables of the recording policy, on the product's one declarative ``Base``.

* ``policy_numbers``: one row per firm number (E.164), owned by a ``User``. A number takes its
  slots either from a template (``template_id`` set) or from its own ``policy_number_slots``,
  never both. Removing a number is a soft remove (``active = False``): the row, its history in
  the ledger and the recordings that name it stay; an inactive number is never recorded.
* ``policy_templates`` / ``policy_template_slots``: named schedules shared by many numbers;
  editing a template changes the schedule of every number that references it.
* ``policy_notifications``: the outbox of webhook notifications; a row stays until delivered.
* ``policy_counters``: named counters (``emergency_calls``: the only trace of an emergency
  call; ``policy_version``: bumped by every change so that engines know to reload).

Slots are stored as their canonical text (``"mon-fri 08:00-18:00"``); times are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from siprec_recorder.storage.models import Base, User, UTCDateTime, utcnow

__all__ = [
    "COUNTER_EMERGENCY_CALLS",
    "COUNTER_POLICY_VERSION",
    "PolicyCounter",
    "PolicyNotification",
    "PolicyNumber",
    "PolicyNumberSlot",
    "PolicyTemplate",
    "PolicyTemplateSlot",
    "POLICY_TABLES",
]

COUNTER_EMERGENCY_CALLS = "emergency_calls"
COUNTER_POLICY_VERSION = "policy_version"


class _Edited:
    """When a row was created and last changed (the last columns of its table)."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, sort_order=10)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, sort_order=10)


class _Slot:
    """One slot of a schedule (canonical text) and its place in it; the owner's key column
    is the subclass's own, between ``id`` and ``position``."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-10)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0, sort_order=10)
    spec: Mapped[str] = mapped_column(String(200), nullable=False, sort_order=10)


def _owner_key(table: str) -> Mapped[int]:
    return mapped_column(ForeignKey(f"{table}.id", ondelete="CASCADE"), index=True, nullable=False)


class PolicyTemplate(_Edited, Base):
    """A named weekly schedule."""

    __tablename__ = "policy_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)


class PolicyTemplateSlot(_Slot, Base):
    """One slot of a template."""

    __tablename__ = "policy_template_slots"

    template_id: Mapped[int] = _owner_key("policy_templates")


class PolicyNumber(_Edited, Base):
    """A firm number and how it is recorded."""

    __tablename__ = "policy_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey(User.id, ondelete="SET NULL"), index=True, nullable=True
    )
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="professional")
    managed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False, default="manual")
    beep: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    notify: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    self_service: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_templates.id", ondelete="RESTRICT"), index=True, nullable=True
    )


class PolicyNumberSlot(_Slot, Base):
    """One slot of a number's own schedule."""

    __tablename__ = "policy_number_slots"

    number_id: Mapped[int] = _owner_key("policy_numbers")


class PolicyNotification(Base):
    """A webhook notification waiting for delivery (kept, with ``delivered_at``, after)."""

    __tablename__ = "policy_notifications"
    __table_args__ = (Index("ix_policy_notifications_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    number: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PolicyCounter(Base):
    """A named counter."""

    __tablename__ = "policy_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


#: The policy's tables, in creation order.
POLICY_TABLES: tuple[Table, ...] = tuple(
    cast(Table, model.__table__)
    for model in (
        PolicyTemplate,
        PolicyTemplateSlot,
        PolicyNumber,
        PolicyNumberSlot,
        PolicyNotification,
        PolicyCounter,
    )
)
