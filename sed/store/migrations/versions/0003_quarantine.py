"""Quarantine: messages the fusion node could not handle, kept for an admin to look at.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("entry_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("received_at_ns", sa.BigInteger, nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=True),
        sa.Column("message_id", sa.String(96), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_received_at_ns", "quarantine", ["received_at_ns"])
    op.create_index("ix_quarantine_sensor_id", "quarantine", ["sensor_id"])


def downgrade() -> None:
    op.drop_table("quarantine")
