"""Baseline: the schema of release 0.1.0 (every table of every package).

Revision ID: 0001
Revises:
Create Date: 2026-12-01 21:34:05.884574
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_TABLES = (
    "ledger",
    "ledger_head",
    "policy_counters",
    "policy_notifications",
    "policy_templates",
    "recordings",
    "retention_rules",
    "users",
    "web_labels",
    "web_pending_logins",
    "web_sessions",
    "dtmf_digits",
    "policy_numbers",
    "policy_template_slots",
    "recording_participants",
    "recording_streams",
    "web_cases",
    "web_recording_labels",
    "policy_number_slots",
    "web_access_requests",
    "web_access_request_events",
)


def upgrade() -> None:
    # A database of release 0.1.0 was made by create_all as the models stood when each
    # package was first imported: it has some, all or none of these tables. Create what is
    # missing and never touch what exists (it already has this very shape).
    missing = set(_TABLES) - set(sa.inspect(op.get_bind()).get_table_names())
    if "ledger" in missing:
        op.create_table(
            "ledger",
            sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(), nullable=False),
            sa.Column("action", sa.String(), nullable=False),
            sa.Column("subject", sa.String(), nullable=False),
            sa.Column("details", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.String(length=64), nullable=False),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("hash"),
        )
        with op.batch_alter_table("ledger", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_ledger_action"), ["action"], unique=False)
            batch_op.create_index(batch_op.f("ix_ledger_subject"), ["subject"], unique=False)

    if "ledger_head" in missing:
        op.create_table(
            "ledger_head",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "policy_counters" in missing:
        op.create_table(
            "policy_counters",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("value", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "policy_notifications" in missing:
        op.create_table(
            "policy_notifications",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("number", sa.String(length=32), nullable=False),
            sa.Column("payload", sa.Text(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_error", sa.String(length=500), nullable=True),
            sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("policy_notifications", schema=None) as batch_op:
            batch_op.create_index(
                "ix_policy_notifications_due", ["delivered_at", "next_attempt_at"], unique=False
            )

    if "policy_templates" in missing:
        op.create_table(
            "policy_templates",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=100), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("name"),
        )
    if "recordings" in missing:
        op.create_table(
            "recordings",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("call_id", sa.String(), nullable=False),
            sa.Column("siprec_session_id", sa.String(), nullable=True),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("end", sa.DateTime(timezone=True), nullable=True),
            sa.Column("duration_s", sa.Float(), nullable=True),
            sa.Column("direction", sa.String(length=8), nullable=False),
            sa.Column("recorded_number", sa.String(), nullable=True),
            sa.Column("other_number", sa.String(), nullable=True),
            sa.Column("file", sa.String(), nullable=True),
            sa.Column("sidecar", sa.String(), nullable=True),
            sa.Column("sha256", sa.String(length=64), nullable=True),
            sa.Column("size_bytes", sa.Integer(), nullable=True),
            sa.Column("codec", sa.String(), nullable=True),
            sa.Column("sample_rate", sa.Integer(), nullable=True),
            sa.Column("channels", sa.Integer(), nullable=True),
            sa.Column("srtp", sa.Boolean(), nullable=False),
            sa.Column("beep", sa.Boolean(), nullable=False),
            sa.Column("source", sa.String(), nullable=True),
            sa.Column("key_id", sa.String(length=128), nullable=True),
            sa.Column("retention_until", sa.DateTime(timezone=True), nullable=True),
            sa.Column("legal_hold", sa.Boolean(), nullable=False),
            sa.Column("metadata_json", sa.JSON(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("recordings", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_recordings_call_id"), ["call_id"], unique=False)
            batch_op.create_index(
                batch_op.f("ix_recordings_other_number"), ["other_number"], unique=False
            )
            batch_op.create_index(
                "ix_recordings_other_number_start", ["other_number", "start"], unique=False
            )
            batch_op.create_index(
                batch_op.f("ix_recordings_recorded_number"), ["recorded_number"], unique=False
            )
            batch_op.create_index(
                "ix_recordings_recorded_number_start", ["recorded_number", "start"], unique=False
            )
            batch_op.create_index("ix_recordings_start", ["start"], unique=False)
            batch_op.create_index(batch_op.f("ix_recordings_state"), ["state"], unique=False)

    if "retention_rules" in missing:
        op.create_table(
            "retention_rules",
            sa.Column("number", sa.String(length=64), nullable=False),
            sa.Column("until", sa.DateTime(timezone=True), nullable=False),
            sa.Column("set_by", sa.String(length=255), nullable=False),
            sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("number"),
        )
    if "users" in missing:
        op.create_table(
            "users",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("login", sa.String(length=255), nullable=False),
            sa.Column("name", sa.String(length=255), nullable=True),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("password_hash", sa.String(length=512), nullable=True),
            sa.Column("must_change_password", sa.Boolean(), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("failed_logins", sa.Integer(), nullable=False),
            sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
            sa.Column("totp_secret", sa.String(length=255), nullable=True),
            sa.Column("four_eyes", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("login"),
        )
    if "web_labels" in missing:
        op.create_table(
            "web_labels",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("title", sa.String(length=80), nullable=False),
            sa.Column("colour", sa.String(length=7), nullable=False),
            sa.Column("created_by", sa.String(length=100), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("title"),
        )
    if "web_pending_logins" in missing:
        op.create_table(
            "web_pending_logins",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("login", sa.String(length=100), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("used", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("token_hash"),
        )
    if "web_sessions" in missing:
        op.create_table(
            "web_sessions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("login", sa.String(length=100), nullable=False),
            sa.Column("csrf_token", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
            sa.Column("second_login", sa.String(length=100), nullable=True),
            sa.Column("ended", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("token_hash"),
        )
        with op.batch_alter_table("web_sessions", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_web_sessions_login"), ["login"], unique=False)

    if "dtmf_digits" in missing:
        op.create_table(
            "dtmf_digits",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("recording_id", sa.String(length=64), nullable=False),
            sa.Column("label", sa.String(), nullable=True),
            sa.Column("digit", sa.String(), nullable=False),
            sa.Column("at_s", sa.Float(), nullable=False),
            sa.Column("duration_ms", sa.Integer(), nullable=True),
            sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("dtmf_digits", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_dtmf_digits_recording_id"), ["recording_id"], unique=False
            )

    if "policy_numbers" in missing:
        op.create_table(
            "policy_numbers",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("number", sa.String(length=32), nullable=False),
            sa.Column("user_id", sa.Integer(), nullable=True),
            sa.Column("mode", sa.String(length=16), nullable=False),
            sa.Column("managed", sa.Boolean(), nullable=False),
            sa.Column("status", sa.String(length=8), nullable=False),
            sa.Column("beep", sa.Boolean(), nullable=False),
            sa.Column("notify", sa.Boolean(), nullable=False),
            sa.Column("self_service", sa.Boolean(), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("template_id", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["template_id"], ["policy_templates.id"], ondelete="RESTRICT"),
            sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("number"),
        )
        with op.batch_alter_table("policy_numbers", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_policy_numbers_template_id"), ["template_id"], unique=False
            )
            batch_op.create_index(
                batch_op.f("ix_policy_numbers_user_id"), ["user_id"], unique=False
            )

    if "policy_template_slots" in missing:
        op.create_table(
            "policy_template_slots",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("template_id", sa.Integer(), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("spec", sa.String(length=200), nullable=False),
            sa.ForeignKeyConstraint(["template_id"], ["policy_templates.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("policy_template_slots", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_policy_template_slots_template_id"), ["template_id"], unique=False
            )

    if "recording_participants" in missing:
        op.create_table(
            "recording_participants",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("recording_id", sa.String(length=64), nullable=False),
            sa.Column("participant_id", sa.String(), nullable=True),
            sa.Column("aor", sa.String(), nullable=True),
            sa.Column("name", sa.String(), nullable=True),
            sa.Column("number", sa.String(), nullable=True),
            sa.Column("role", sa.String(length=16), nullable=True),
            sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
            sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("recording_participants", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_recording_participants_number"), ["number"], unique=False
            )
            batch_op.create_index(
                batch_op.f("ix_recording_participants_recording_id"), ["recording_id"], unique=False
            )

    if "recording_streams" in missing:
        op.create_table(
            "recording_streams",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("recording_id", sa.String(length=64), nullable=False),
            sa.Column("label", sa.String(), nullable=False),
            sa.Column("stream_id", sa.String(), nullable=True),
            sa.Column("participant_id", sa.String(), nullable=True),
            sa.Column("codec", sa.String(), nullable=True),
            sa.Column("sample_rate", sa.Integer(), nullable=True),
            sa.Column("packets_expected", sa.Integer(), nullable=False),
            sa.Column("packets_received", sa.Integer(), nullable=False),
            sa.Column("packets_lost", sa.Integer(), nullable=False),
            sa.Column("packets_late", sa.Integer(), nullable=False),
            sa.Column("packets_duplicate", sa.Integer(), nullable=False),
            sa.Column("jitter_ms", sa.Float(), nullable=True),
            sa.Column("longest_gap_ms", sa.Float(), nullable=True),
            sa.Column("mos", sa.Float(), nullable=True),
            sa.Column("srtp_auth_failures", sa.Integer(), nullable=False),
            sa.Column("first_packet_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_packet_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("recording_streams", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_recording_streams_recording_id"), ["recording_id"], unique=False
            )

    if "web_cases" in missing:
        op.create_table(
            "web_cases",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("title", sa.String(length=200), nullable=False),
            sa.Column("description", sa.Text(), nullable=False),
            sa.Column("label_id", sa.Integer(), nullable=False),
            sa.Column("owner", sa.String(length=100), nullable=False),
            sa.Column("list_access", sa.String(length=10), nullable=False),
            sa.Column("play_access", sa.String(length=10), nullable=False),
            sa.Column("label_access", sa.String(length=10), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["label_id"],
                ["web_labels.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("label_id"),
        )
    if "web_recording_labels" in missing:
        op.create_table(
            "web_recording_labels",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("recording_id", sa.String(length=64), nullable=False),
            sa.Column("label_id", sa.Integer(), nullable=False),
            sa.Column("added_by", sa.String(length=100), nullable=False),
            sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["label_id"],
                ["web_labels.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("recording_id", "label_id"),
        )
        with op.batch_alter_table("web_recording_labels", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_web_recording_labels_label_id"), ["label_id"], unique=False
            )
            batch_op.create_index(
                batch_op.f("ix_web_recording_labels_recording_id"), ["recording_id"], unique=False
            )

    if "policy_number_slots" in missing:
        op.create_table(
            "policy_number_slots",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("number_id", sa.Integer(), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("spec", sa.String(length=200), nullable=False),
            sa.ForeignKeyConstraint(["number_id"], ["policy_numbers.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("policy_number_slots", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_policy_number_slots_number_id"), ["number_id"], unique=False
            )

    if "web_access_requests" in missing:
        op.create_table(
            "web_access_requests",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("requester", sa.String(length=100), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("rights", sa.String(length=40), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("status", sa.String(length=10), nullable=False),
            sa.Column("decided_by", sa.String(length=100), nullable=True),
            sa.Column("decision_note", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
            sa.ForeignKeyConstraint(
                ["case_id"],
                ["web_cases.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("web_access_requests", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_web_access_requests_case_id"), ["case_id"], unique=False
            )
            batch_op.create_index(
                batch_op.f("ix_web_access_requests_requester"), ["requester"], unique=False
            )

    if "web_access_request_events" in missing:
        op.create_table(
            "web_access_request_events",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("request_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=100), nullable=False),
            sa.Column("action", sa.String(length=20), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(
                ["request_id"],
                ["web_access_requests.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("web_access_request_events", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_web_access_request_events_request_id"), ["request_id"], unique=False
            )

    if "ledger_head" in missing:
        _start_ledger_head()


def _start_ledger_head() -> None:
    """The head row points at the last ledger entry (the genesis hash on an empty ledger)."""
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")).first()
    seq, digest = (0, "0" * 64) if last is None else (int(last[0]), str(last[1]))
    bind.execute(
        sa.text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, :seq, :hash)"),
        {"seq": seq, "hash": digest},
    )


def downgrade() -> None:
    with op.batch_alter_table("web_access_request_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_access_request_events_request_id"))

    op.drop_table("web_access_request_events")
    with op.batch_alter_table("web_access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_access_requests_requester"))
        batch_op.drop_index(batch_op.f("ix_web_access_requests_case_id"))

    op.drop_table("web_access_requests")
    with op.batch_alter_table("policy_number_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_number_slots_number_id"))

    op.drop_table("policy_number_slots")
    with op.batch_alter_table("web_recording_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_recording_labels_recording_id"))
        batch_op.drop_index(batch_op.f("ix_web_recording_labels_label_id"))

    op.drop_table("web_recording_labels")
    op.drop_table("web_cases")
    with op.batch_alter_table("recording_streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_streams_recording_id"))

    op.drop_table("recording_streams")
    with op.batch_alter_table("recording_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_participants_recording_id"))
        batch_op.drop_index(batch_op.f("ix_recording_participants_number"))

    op.drop_table("recording_participants")
    with op.batch_alter_table("policy_template_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_template_slots_template_id"))

    op.drop_table("policy_template_slots")
    with op.batch_alter_table("policy_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_numbers_user_id"))
        batch_op.drop_index(batch_op.f("ix_policy_numbers_template_id"))

    op.drop_table("policy_numbers")
    with op.batch_alter_table("dtmf_digits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dtmf_digits_recording_id"))

    op.drop_table("dtmf_digits")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_login"))

    op.drop_table("web_sessions")
    op.drop_table("web_pending_logins")
    op.drop_table("web_labels")
    op.drop_table("users")
    op.drop_table("retention_rules")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_state"))
        batch_op.drop_index("ix_recordings_start")
        batch_op.drop_index("ix_recordings_recorded_number_start")
        batch_op.drop_index(batch_op.f("ix_recordings_recorded_number"))
        batch_op.drop_index("ix_recordings_other_number_start")
        batch_op.drop_index(batch_op.f("ix_recordings_other_number"))
        batch_op.drop_index(batch_op.f("ix_recordings_call_id"))

    op.drop_table("recordings")
    op.drop_table("policy_templates")
    with op.batch_alter_table("policy_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_notifications_due")

    op.drop_table("policy_notifications")
    op.drop_table("policy_counters")
    op.drop_table("ledger_head")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_subject"))
        batch_op.drop_index(batch_op.f("ix_ledger_action"))

    op.drop_table("ledger")
