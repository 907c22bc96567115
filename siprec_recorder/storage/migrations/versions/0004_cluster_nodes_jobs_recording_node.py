"""cluster: node leases, run-once job claims, the node of every recording

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only what the database lacks: a node of the cluster's first version made its two
    # tables itself (create_all), and recordings.node_id came with them.
    insp = sa.inspect(op.get_bind())
    existing = set(insp.get_table_names())
    if "cluster_nodes" not in existing:
        op.create_table(
            "cluster_nodes",
            sa.Column("node_id", sa.String(length=64), nullable=False),
            sa.Column("instance", sa.String(length=64), nullable=False),
            sa.Column("host", sa.String(), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("started_at", sa.Float(), nullable=False),
            sa.Column("heartbeat_at", sa.Float(), nullable=False),
            sa.Column("taken_by", sa.String(length=64), nullable=True),
            sa.Column("taken_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("node_id"),
        )
    if "cluster_jobs" not in existing:
        op.create_table(
            "cluster_jobs",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("claimed_by", sa.String(length=64), nullable=True),
            sa.Column("claimed_until", sa.Float(), nullable=False),
            sa.Column("last_run_at", sa.Float(), nullable=False),
            sa.Column("last_result", sa.String(), nullable=True),
            sa.PrimaryKeyConstraint("name"),
        )
    columns = {c["name"] for c in insp.get_columns("recordings")}
    indexes = {i["name"] for i in insp.get_indexes("recordings")}
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        if "node_id" not in columns:
            batch_op.add_column(sa.Column("node_id", sa.String(length=64), nullable=True))
        if "ix_recordings_node_id" not in indexes:
            batch_op.create_index(batch_op.f("ix_recordings_node_id"), ["node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_node_id"))
        batch_op.drop_column("node_id")
    op.drop_table("cluster_jobs")
    op.drop_table("cluster_nodes")
