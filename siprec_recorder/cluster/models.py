"""The cluster's tables: one lease row per node and one claim row per run-once job.

Times are plain epoch seconds (``Float``): they are compared with a node's own clock, so the
nodes' clocks must agree to well within ``[cluster] lease_seconds`` (NTP does).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Float, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from siprec_recorder.storage.models import Base

__all__ = ["CLUSTER_TABLES", "ClusterJob", "ClusterNode"]


class ClusterNode(Base):
    """A recorder node's lease: alive while ``heartbeat_at`` is recent.

    ``state``: ``live`` (the node runs), ``stopped`` (it stopped cleanly, nothing left), or
    ``taking`` (a survivor, ``taken_by``, is finalising what the dead node left).
    ``instance`` tells two processes configured with the same ``node_id`` apart.
    """

    __tablename__ = "cluster_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(64), nullable=False)
    host: Mapped[str] = mapped_column(String(), nullable=False, default="")
    pid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="live")
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    heartbeat_at: Mapped[float] = mapped_column(Float, nullable=False)
    taken_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    taken_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ClusterJob(Base):
    """A job that must run once across the cluster: who holds it and until when."""

    __tablename__ = "cluster_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    last_run_at: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    last_result: Mapped[str | None] = mapped_column(String(), nullable=True)


CLUSTER_TABLES: tuple[Table, ...] = (
    cast(Table, ClusterNode.__table__),
    cast(Table, ClusterJob.__table__),
)
