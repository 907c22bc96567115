"""Tables of the assurance package, on the product's one declarative ``Base``.

* ``reconciliation_runs``: one row per reconciliation (CLI or watched folder): its summary
  and its exceptions as JSON, so the portal can show and drill into past runs.
* ``alerts``: every alert raised, keyed by its alert id (the same fact raises the same id,
  so a fact seen twice, by two checks or two nodes, is one alert).
* ``alert_deliveries``: the durable outbox, one row per alert and channel: attempts, when to
  try next, when it was delivered. A receiver that is down only delays its rows.

The tables are created by the migrations (:mod:`siprec_recorder.storage.migrations`) when
:meth:`~siprec_recorder.storage.db.Database.open` runs, like every other table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siprec_recorder.storage.models import Base, UTCDateTime, utcnow

__all__ = ["Alert", "AlertDelivery", "ReconciliationRun"]


class ReconciliationRun(Base):
    """One reconciliation of a CDR file."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, index=True
    )
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    source: Mapped[str] = mapped_column(String(512), nullable=False)
    exceptions_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    exceptions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)


class Alert(Base):
    """An alert: what rule saw what, once per alert id."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    subject: Mapped[str] = mapped_column(String(512), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, index=True
    )


class AlertDelivery(Base):
    """The outbox: one alert to one channel."""

    __tablename__ = "alert_deliveries"

    alert_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
