"""The product's tables, on one SQLAlchemy 2 declarative :class:`Base`.

Theory of operation
-------------------
Every package that owns tables (storage here, ``policy/``, ``web/``) declares them on this one
``Base`` so that a single ``MetaData`` describes the whole schema and foreign keys can cross
packages (``policy_numbers.user_id -> users.id``). Only portable column types are used, so the
same models work on SQLite (the default, one file in the recordings folder) and on
PostgreSQL (``postgresql+asyncpg://``, for clusters).

Strings that come from outside (Call-ID, AORs, names, labels, numbers, ledger subjects) are
``String()`` without a length: a long value from a peer must not make PostgreSQL refuse the
row of a call (SQLite never enforces lengths anyway). Bounding them is the parsers' job.

Times are stored in UTC. SQLite has no time-zone aware type, so :class:`UTCDateTime` stores a
naive UTC value and hands back an aware UTC ``datetime``; on PostgreSQL it maps to
``timestamp with time zone``. A naive value given to it is taken to be UTC already.

Tables of this package:

* ``recordings``: one row per call the recorder saw, recorded or not (``state``: ``recording``
  while the call lasts, so a crash leaves a row; then ``complete``, ``interrupted``,
  ``failed``; ``declined`` for a call policy refused, with ``reason``).
* ``recording_participants``: who took part (``number`` is the normalised number, indexed for
  search), with join/leave times (participants change on transfer).
* ``recording_streams``: one row per received leg with its quality statistics.
* ``dtmf_digits``: RFC 4733 digits seen on a leg, at seconds from the start of the recording.
* ``ledger``: the append-only, hash-chained audit trail (see :mod:`.ledger`), and
  ``ledger_head``: one row naming its last entry (append lock and tail anchor).
* ``users``: portal users (used by ``policy/`` and ``web/``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "DIRECTIONS",
    "RECORDING_STATES",
    "STREAM_STATUSES",
    "USER_ROLES",
    "Base",
    "DtmfDigit",
    "LedgerEntry",
    "LedgerHead",
    "Recording",
    "RecordingParticipant",
    "RecordingStream",
    "UTCDateTime",
    "User",
    "new_id",
    "utcnow",
]

#: ``purged``: files disposed of after retention (``compliance/retention.py``); the row stays.
RECORDING_STATES: tuple[str, ...] = (
    "recording",
    "complete",
    "interrupted",
    "failed",
    "declined",
    "purged",
)
DIRECTIONS: tuple[str, ...] = ("in", "out", "unknown")
STREAM_STATUSES: tuple[str, ...] = (
    "ok",
    "no_media",
    "unsupported_codec",
    "decode_failed",
    "auth_failed",
)
USER_ROLES: tuple[str, ...] = ("standard", "admin", "auditor")


def utcnow() -> datetime:
    """The current time, aware, UTC (for row timestamps only; decisions take time as input)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new recording id: a random UUID4 as 32 lower-case hex digits."""
    import uuid

    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime`` that always comes back aware and in UTC (naive input is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """The one declarative base of siprec-recorder (all packages add their tables here)."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Recording(Base):
    """One call seen by the recorder: recorded, being recorded, or declined (with a reason)."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(String(), nullable=False, index=True)
    siprec_session_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="recording", index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    direction: Mapped[str] = mapped_column(String(8), nullable=False, default="unknown")
    recorded_number: Mapped[str | None] = mapped_column(String(), nullable=True, index=True)
    other_number: Mapped[str | None] = mapped_column(String(), nullable=True, index=True)
    file: Mapped[str | None] = mapped_column(String(), nullable=True)
    sidecar: Mapped[str | None] = mapped_column(String(), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    codec: Mapped[str | None] = mapped_column(String(), nullable=True)
    sample_rate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    srtp: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    beep: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    source: Mapped[str | None] = mapped_column(String(), nullable=True)  # the hop it came from
    # The SRC's own address when the hop is a proxy in [sip] trusted_proxies.
    origin: Mapped[str | None] = mapped_column(String(), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The recorder node that records (recorded) it: the one whose spool holds a live call.
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    retention_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    legal_hold: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    participants: Mapped[list[RecordingParticipant]] = relationship(
        back_populates="recording",
        cascade="all, delete-orphan",
        order_by="RecordingParticipant.id",
    )
    streams: Mapped[list[RecordingStream]] = relationship(
        back_populates="recording",
        cascade="all, delete-orphan",
        order_by="RecordingStream.id",
    )
    dtmf: Mapped[list[DtmfDigit]] = relationship(
        back_populates="recording",
        cascade="all, delete-orphan",
        order_by="DtmfDigit.id",
    )

    __table_args__ = (
        Index("ix_recordings_recorded_number_start", "recorded_number", "start"),
        Index("ix_recordings_other_number_start", "other_number", "start"),
        Index("ix_recordings_start", "start"),
    )


class RecordingParticipant(Base):
    """A participant of a recording (RFC 7865 ``participant``), with join/leave times."""

    __tablename__ = "recording_participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False, index=True
    )
    participant_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    aor: Mapped[str | None] = mapped_column(String(), nullable=True)
    name: Mapped[str | None] = mapped_column(String(), nullable=True)
    number: Mapped[str | None] = mapped_column(String(), nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    recording: Mapped[Recording] = relationship(back_populates="participants")


class RecordingStream(Base):
    """One received leg of a recording and its quality statistics."""

    __tablename__ = "recording_streams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False, index=True
    )
    label: Mapped[str] = mapped_column(String(), nullable=False)
    stream_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    participant_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    codec: Mapped[str | None] = mapped_column(String(), nullable=True)
    sample_rate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    packets_expected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    packets_received: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    packets_lost: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    packets_late: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    packets_duplicate: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    jitter_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    longest_gap_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    mos: Mapped[float | None] = mapped_column(Float, nullable=True)
    srtp_auth_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected_source: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected_ssrc: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    first_packet_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_packet_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="ok")

    recording: Mapped[Recording] = relationship(back_populates="streams")


class DtmfDigit(Base):
    """A DTMF digit seen on leg ``label``, ``at_s`` seconds after the recording's start."""

    __tablename__ = "dtmf_digits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False, index=True
    )
    label: Mapped[str | None] = mapped_column(String(), nullable=True)
    digit: Mapped[str] = mapped_column(String(), nullable=False)
    at_s: Mapped[float] = mapped_column(Float, nullable=False)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)

    recording: Mapped[Recording] = relationship(back_populates="dtmf")


class LedgerEntry(Base):
    """One event of the audit ledger; ``hash`` chains it to the entry before (see ledger.py).

    ``seq`` is assigned by :func:`~siprec_recorder.storage.ledger.append_event` (last + 1), not
    by the database, because it is part of the hashed content.
    """

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(), nullable=False)
    action: Mapped[str] = mapped_column(String(), nullable=False, index=True)
    subject: Mapped[str] = mapped_column(String(), nullable=False, index=True)
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)


class LedgerHead(Base):
    """The ledger's last entry, one row (``id`` 1), updated with every append.

    Appending first updates this row, which takes the write lock (SQLite) or the row lock
    (PostgreSQL) before the last entry is read: appends from several processes serialise. It
    also lets :func:`~siprec_recorder.storage.ledger.verify_chain` notice entries removed from
    the end of the chain.
    """

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class User(Base):
    """A portal user (``role``: standard, admin or auditor)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="standard")
    password_hash: Mapped[str | None] = mapped_column(String(512), nullable=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    four_eyes: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
