"""False-alarm policy: each incident's priority (alert, unconfirmed, suppressed) and sensors' noisy flags.

Incidents stored before the policy existed were all alerts, and stay so.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("priority", sa.String(16), nullable=False, server_default="alert"))
        batch.create_index("ix_incidents_priority", ["priority"])
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(sa.Column("noisy_labels", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("noisy_labels")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_priority")
        batch.drop_column("priority")
