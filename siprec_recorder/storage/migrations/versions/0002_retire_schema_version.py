"""Retire ``schema_version``, the table of the migration runner before Alembic.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Release 0.1.0 recorded its migrations 1 (tables) and 2 (ledger_head) there; the
    # baseline stands for both, so the table says nothing more.
    if "schema_version" in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table("schema_version")


def downgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
