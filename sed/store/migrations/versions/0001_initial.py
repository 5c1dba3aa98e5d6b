"""Initial schema: sensors, incidents, detections, evidence clips.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensors",
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("x_m", sa.Float, nullable=True),
        sa.Column("y_m", sa.Float, nullable=True),
        sa.Column("z_m", sa.Float, nullable=True),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("heartbeat", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("sensor_id", name="pk_sensors"),
    )
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(96), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("origin_time_ns", sa.BigInteger, nullable=False),
        sa.Column("x_m", sa.Float, nullable=True),
        sa.Column("y_m", sa.Float, nullable=True),
        sa.Column("z_m", sa.Float, nullable=True),
        sa.Column("uncertainty_m", sa.Float, nullable=True),
        sa.Column("cov_xx_m2", sa.Float, nullable=True),
        sa.Column("cov_xy_m2", sa.Float, nullable=True),
        sa.Column("cov_yy_m2", sa.Float, nullable=True),
        sa.Column("n_shots", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_incidents"),
    )
    for column in ("label", "origin_time_ns", "status", "updated_at_ns"):
        op.create_index(f"ix_incidents_{column}", "incidents", [column])
    op.create_table(
        "detections",
        sa.Column("detection_id", sa.String(96), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("arrival_time_ns", sa.BigInteger, nullable=False),
        sa.Column("arrival_uncertainty_ns", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("peak_dbfs", sa.Float, nullable=False),
        sa.Column("x_m", sa.Float, nullable=False),
        sa.Column("y_m", sa.Float, nullable=False),
        sa.Column("z_m", sa.Float, nullable=False),
        sa.Column("clock_status", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("received_at_ns", sa.BigInteger, nullable=False),
        sa.Column("incident_id", sa.String(96), nullable=True),
        sa.PrimaryKeyConstraint("detection_id", name="pk_detections"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.incident_id"], name="fk_detections_incident_id_incidents"),
    )
    for column in ("sensor_id", "arrival_time_ns", "incident_id"):
        op.create_index(f"ix_detections_{column}", "detections", [column])
    op.create_table(
        "clips",
        sa.Column("detection_id", sa.String(96), nullable=False),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("start_time_ns", sa.BigInteger, nullable=False),
        sa.Column("sample_rate_hz", sa.Integer, nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("received_at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("detection_id", name="pk_clips"),
    )
    op.create_index("ix_clips_received_at_ns", "clips", ["received_at_ns"])


def downgrade() -> None:
    for table in ("clips", "detections", "incidents", "sensors"):
        op.drop_table(table)
