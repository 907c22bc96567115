"""Tables of transcription: the durable queue, transcripts and their searchable segments.

Theory of operation
-------------------
``transcription_jobs`` is the queue: one row per finished recording that has per-leg audio
waiting in ``{recordings}/.transcribe/{id}/`` (written by the finaliser). A job is claimed by
the node that wrote its audio (``node``), moves ``pending -> running -> done | failed``, and a
``running`` job of a node that restarts goes back to ``pending``: nothing is lost by a crash.

``transcripts`` is the record (the JSON file beside the MP3, its SHA-256, the model), and
``transcript_segments`` one row per spoken segment of one leg with who spoke (from the
SIPREC metadata: the participant that sends on the leg), times from the start of the
recording, text, confidence and the words with their times.

Full text: SQLite gets an external-content FTS5 table ``transcript_fts`` kept in step by
triggers; PostgreSQL gets a generated ``tsvector`` column with a GIN index. Both use the
``simple`` form of words (no stemming): calls mix nl, fr, de and en, and prefix search
(``pri*``) covers inflections without guessing a language per row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, JSON, Float, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from ..storage.models import Base, UTCDateTime, utcnow

__all__ = ["JOB_STATES", "Transcript", "TranscriptSegment", "TranscriptionJob"]

JOB_STATES: tuple[str, ...] = ("pending", "running", "done", "failed", "skipped")


class TranscriptionJob(Base):
    """One recording waiting for (or done with) transcription."""

    __tablename__ = "transcription_jobs"

    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    node: Mapped[str] = mapped_column(String(), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Transcript(Base):
    """The transcript record of one recording (the file beside its MP3)."""

    __tablename__ = "transcripts"

    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    file: Mapped[str | None] = mapped_column(String(), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str] = mapped_column(String(), nullable=False)
    languages: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class TranscriptSegment(Base):
    """A stretch of speech on one leg: who, when (seconds from the recording's start), what."""

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False, index=True
    )
    leg: Mapped[str] = mapped_column(String(), nullable=False)
    participant_id: Mapped[str | None] = mapped_column(String(), nullable=True)
    speaker: Mapped[str | None] = mapped_column(String(), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    start_s: Mapped[float] = mapped_column(Float, nullable=False)
    end_s: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    words: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


_SEGMENTS = TranscriptSegment.__table__
for _ddl in (
    "CREATE VIRTUAL TABLE IF NOT EXISTS transcript_fts USING fts5("
    "text, content='transcript_segments', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS transcript_fts_ai AFTER INSERT ON transcript_segments BEGIN "
    "INSERT INTO transcript_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS transcript_fts_ad AFTER DELETE ON transcript_segments BEGIN "
    "INSERT INTO transcript_fts(transcript_fts, rowid, text) VALUES('delete', old.id, old.text);"
    " END",
):
    event.listen(_SEGMENTS, "after_create", DDL(_ddl).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _ddl in (
    "ALTER TABLE transcript_segments ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED",
    "CREATE INDEX ix_transcript_segments_tsv ON transcript_segments USING GIN (tsv)",
):
    event.listen(_SEGMENTS, "after_create", DDL(_ddl).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
