"""alerts, reconciliation, login history, stream rejections, transcripts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:48:21.490007
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class _Skip:
    """Stands in for a batch on a table that already existed: its indexes exist too."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def upgrade() -> None:
    # Like the baseline, only what the database lacks: a release that ran the tables'
    # own create_all (the alert outbox, transcripts) may have some of them already.
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def create_table(name: str, *parts: Any) -> None:
        if name not in existing:
            op.create_table(name, *parts)

    def new_table(name: str) -> Any:
        return contextlib.nullcontext(_Skip()) if name in existing else op.batch_alter_table(name)

    create_table(
        "alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with new_table("alerts") as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_rule"), ["rule"], unique=False)

    create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("exceptions_count", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("exceptions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with new_table("reconciliation_runs") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_runs_created_at"), ["created_at"], unique=False
        )

    create_table(
        "web_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with new_table("web_login_failures") as batch_op:
        batch_op.create_index(batch_op.f("ix_web_login_failures_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_login_failures_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_login_failures_source"), ["source"], unique=False)

    create_table(
        "web_password_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with new_table("web_password_history") as batch_op:
        batch_op.create_index(batch_op.f("ix_web_password_history_login"), ["login"], unique=False)

    create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "channel"),
    )
    with new_table("alert_deliveries") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_deliveries_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    create_table(
        "transcript_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("leg", sa.String(), nullable=False),
        sa.Column("participant_id", sa.String(), nullable=True),
        sa.Column("speaker", sa.String(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("words", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with new_table("transcript_segments") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transcript_segments_recording_id"), ["recording_id"], unique=False
        )
    _full_text_index()

    create_table(
        "transcription_jobs",
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    with new_table("transcription_jobs") as batch_op:
        batch_op.create_index(batch_op.f("ix_transcription_jobs_state"), ["state"], unique=False)

    create_table(
        "transcripts",
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("recording_streams")}
    with op.batch_alter_table("recording_streams", schema=None) as batch_op:
        for name in ("rejected_source", "rejected_ssrc"):
            if name not in columns:
                batch_op.add_column(
                    sa.Column(name, sa.Integer(), nullable=False, server_default="0")
                )


def _full_text_index() -> None:
    # op.create_table fires no after_create listeners, so the model's full-text DDL is
    # repeated here; every statement is a no-op on a database that already has it.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS transcript_fts USING fts5("
            "text, content='transcript_segments', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS transcript_fts_ai AFTER INSERT ON transcript_segments "
            "BEGIN INSERT INTO transcript_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS transcript_fts_ad AFTER DELETE ON transcript_segments "
            "BEGIN INSERT INTO transcript_fts(transcript_fts, rowid, text) "
            "VALUES('delete', old.id, old.text); END"
        )
        op.execute("INSERT INTO transcript_fts(transcript_fts) VALUES('rebuild')")
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE transcript_segments ADD COLUMN IF NOT EXISTS tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"
        )
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_transcript_segments_tsv "
            "ON transcript_segments USING GIN (tsv)"
        )


def downgrade() -> None:

    with op.batch_alter_table("recording_streams", schema=None) as batch_op:
        batch_op.drop_column("rejected_ssrc")
        batch_op.drop_column("rejected_source")

    op.drop_table("transcripts")
    with op.batch_alter_table("transcription_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcription_jobs_state"))

    op.drop_table("transcription_jobs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS transcript_fts")
    with op.batch_alter_table("transcript_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcript_segments_recording_id"))

    op.drop_table("transcript_segments")
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_deliveries_next_attempt_at"))

    op.drop_table("alert_deliveries")
    with op.batch_alter_table("web_password_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_password_history_login"))

    op.drop_table("web_password_history")
    with op.batch_alter_table("web_login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_login_failures_source"))
        batch_op.drop_index(batch_op.f("ix_web_login_failures_login"))
        batch_op.drop_index(batch_op.f("ix_web_login_failures_at"))

    op.drop_table("web_login_failures")
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_runs_created_at"))

    op.drop_table("reconciliation_runs")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_rule"))
        batch_op.drop_index(batch_op.f("ix_alerts_created_at"))

    op.drop_table("alerts")
