"""Database tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are integer UTC nanoseconds (BigInteger), positions metres in the site frame.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

sensors = sa.Table(
    "sensors",
    metadata,
    sa.Column("sensor_id", sa.String(64), primary_key=True),
    sa.Column("x_m", sa.Float, nullable=True),
    sa.Column("y_m", sa.Float, nullable=True),
    sa.Column("z_m", sa.Float, nullable=True),
    sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
    sa.Column("heartbeat", sa.LargeBinary, nullable=True),  # the last wire.Heartbeat, msgpack
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("incident_id", sa.String(96), primary_key=True),
    sa.Column("label", sa.String(32), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("origin_time_ns", sa.BigInteger, nullable=False, index=True),
    sa.Column("x_m", sa.Float, nullable=True),
    sa.Column("y_m", sa.Float, nullable=True),
    sa.Column("z_m", sa.Float, nullable=True),
    sa.Column("uncertainty_m", sa.Float, nullable=True),
    sa.Column("cov_xx_m2", sa.Float, nullable=True),
    sa.Column("cov_xy_m2", sa.Float, nullable=True),
    sa.Column("cov_yy_m2", sa.Float, nullable=True),
    sa.Column("n_shots", sa.Integer, nullable=False, default=1),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ns", sa.BigInteger, nullable=False, index=True),
)

detections = sa.Table(
    "detections",
    metadata,
    sa.Column("detection_id", sa.String(96), primary_key=True),
    sa.Column("sensor_id", sa.String(64), nullable=False, index=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("arrival_time_ns", sa.BigInteger, nullable=False, index=True),
    sa.Column("arrival_uncertainty_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("peak_dbfs", sa.Float, nullable=False),
    sa.Column("x_m", sa.Float, nullable=False),
    sa.Column("y_m", sa.Float, nullable=False),
    sa.Column("z_m", sa.Float, nullable=False),
    sa.Column("clock_status", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("received_at_ns", sa.BigInteger, nullable=False),
    sa.Column(
        "incident_id", sa.String(96), sa.ForeignKey("incidents.incident_id"), nullable=True, index=True
    ),
)

clips = sa.Table(
    "clips",
    metadata,
    sa.Column("detection_id", sa.String(96), primary_key=True),
    sa.Column("sensor_id", sa.String(64), nullable=False),
    sa.Column("start_time_ns", sa.BigInteger, nullable=False),
    sa.Column("sample_rate_hz", sa.Integer, nullable=False),
    sa.Column("codec", sa.String(16), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("received_at_ns", sa.BigInteger, nullable=False, index=True),
)

__all__ = ["clips", "detections", "incidents", "metadata", "sensors"]
