"""Database tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are integer UTC nanoseconds (BigInteger), positions metres in the site frame.
"""

from __future__ import annotations

import sqlalchemy as sa

#: Constraint names are fixed so migrations can refer to them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

sensors = sa.Table(
    "sensors",
    metadata,
    sa.Column("sensor_id", sa.String(64), primary_key=True),
    sa.Column("x_m", sa.Float, nullable=True),
    sa.Column("y_m", sa.Float, nullable=True),
    sa.Column("z_m", sa.Float, nullable=True),
    sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
    sa.Column("heartbeat", sa.LargeBinary, nullable=True),  # the last wire.Heartbeat, msgpack
    sa.Column("description", sa.String(200), nullable=True),  # set by an admin: where the pole stands
    sa.Column("noisy_labels", sa.String(100), nullable=True),  # set by the fusion node: 'gunshot,scream'
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
    # Set by the fusion node's false-alarm policy: alert | unconfirmed | suppressed.
    sa.Column("priority", sa.String(16), nullable=False, index=True, server_default="alert"),
    # Alert first, refine later (wire.IncidentStage): provisional | located | unlocated | merged.
    sa.Column("stage", sa.String(16), nullable=False, index=True, server_default="located"),
    sa.Column("merged_into", sa.String(96), nullable=True),  # the incident that took a merged one's detections
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),  # updates of this incident_id
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
    sa.Column("incident_id", sa.String(96), sa.ForeignKey("incidents.incident_id"), nullable=True, index=True),
    sa.Column("directness", sa.Float, nullable=False, server_default="0"),  # log-odds of a direct sound
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

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),  # argon2id, PHC string
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),  # the token itself is never stored
    sa.Column(
        "username", sa.String(64), sa.ForeignKey("users.username", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ns", sa.BigInteger, nullable=True),  # None: until revoked
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(96), sa.ForeignKey("incidents.incident_id"), nullable=False, index=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=True),  # reason of a false alarm, or a note
    sa.Column("at_ns", sa.BigInteger, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_ns", sa.BigInteger, nullable=False, index=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=True),
)

webhook_rules = sa.Table(
    "webhook_rules",
    metadata,
    sa.Column("rule_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("labels", sa.String(200), nullable=False),  # comma-separated; empty: every class
    sa.Column("min_score", sa.Float, nullable=False),
    sa.Column("x_min_m", sa.Float, nullable=True),
    sa.Column("x_max_m", sa.Float, nullable=True),
    sa.Column("y_min_m", sa.Float, nullable=True),
    sa.Column("y_max_m", sa.Float, nullable=True),
    sa.Column("secret", sa.String(200), nullable=True),  # None: the server's api.webhook_secret
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "rule_id", sa.Integer, sa.ForeignKey("webhook_rules.rule_id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("incident_id", sa.String(96), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False, server_default="located"),  # the stage it announces
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed | superseded
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at_ns", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("rule_id", "incident_id", "stage", name="uq_delivery_rule_incident_stage"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at_ns", sa.BigInteger, nullable=False, index=True),
    sa.Column("sensor_id", sa.String(64), nullable=False, index=True),  # the authenticated sender
    sa.Column("message_type", sa.String(32), nullable=True),  # detection, evidence_clip … when decoded
    sa.Column("message_id", sa.String(96), nullable=True),  # the id it would have been acked under
    sa.Column("reason", sa.String(32), nullable=False),  # what failed: store, admission, association …
    sa.Column("detail", sa.String(500), nullable=False),  # the error, escaped to printable text
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the message as msgpack, at most the wire limit
)

__all__ = [
    "audit_log",
    "clips",
    "detections",
    "incidents",
    "metadata",
    "quarantine",
    "reviews",
    "sensors",
    "tokens",
    "users",
    "webhook_deliveries",
    "webhook_rules",
]
