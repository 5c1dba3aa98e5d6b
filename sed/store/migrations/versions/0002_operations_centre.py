"""Operations centre: users and tokens, reviews, audit log, webhook rules and deliveries, sensor notes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(sa.Column("description", sa.String(200), nullable=True))
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_users"),
    )
    op.create_table(
        "tokens",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ns", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_tokens"),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name="fk_tokens_username_users", ondelete="CASCADE"),
    )
    op.create_index("ix_tokens_username", "tokens", ["username"])
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(96), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("review_id", name="pk_reviews"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.incident_id"], name="fk_reviews_incident_id_incidents"),
    )
    op.create_index("ix_reviews_incident_id", "reviews", ["incident_id"])
    op.create_table(
        "audit_log",
        sa.Column("entry_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at_ns", "audit_log", ["at_ns"])
    op.create_index("ix_audit_log_username", "audit_log", ["username"])
    op.create_table(
        "webhook_rules",
        sa.Column("rule_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("labels", sa.String(200), nullable=False),
        sa.Column("min_score", sa.Float, nullable=False),
        sa.Column("x_min_m", sa.Float, nullable=True),
        sa.Column("x_max_m", sa.Float, nullable=True),
        sa.Column("y_min_m", sa.Float, nullable=True),
        sa.Column("y_max_m", sa.Float, nullable=True),
        sa.Column("secret", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name="pk_webhook_rules"),
        sa.UniqueConstraint("name", name="uq_webhook_rules_name"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("incident_id", sa.String(96), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["webhook_rules.rule_id"],
            name="fk_webhook_deliveries_rule_id_webhook_rules",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("rule_id", "incident_id", name="uq_delivery_rule_incident"),
    )
    op.create_index("ix_webhook_deliveries_rule_id", "webhook_deliveries", ["rule_id"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhook_rules", "audit_log", "reviews", "tokens", "users"):
        op.drop_table(table)
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("description")
