"""Alert first, refine later: each incident's stage, merge target and revision; each detection's
directness; one webhook delivery per stage of an incident.

Incidents stored before stages existed were committed once, final: ``located`` when they have
a position, else ``unlocated``, revision 0. Their webhook deliveries were of that stage.
Detections stored before carry directness 0 (no opinion), as a v1 message decodes.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FINAL_STAGE_OF_INCIDENT = sa.text(
    "UPDATE incidents SET stage = CASE WHEN x_m IS NULL THEN 'unlocated' ELSE 'located' END"
)
# A delivery whose incident is gone (retention) keeps 'located': its stage can no longer be told.
_FINAL_STAGE_OF_DELIVERY = sa.text(
    "UPDATE webhook_deliveries SET stage = 'unlocated' WHERE EXISTS ("
    "SELECT 1 FROM incidents WHERE incidents.incident_id = webhook_deliveries.incident_id "
    "AND incidents.x_m IS NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="located"))
        batch.add_column(sa.Column("merged_into", sa.String(96), nullable=True))
        batch.add_column(sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"))
        batch.create_index("ix_incidents_stage", ["stage"])
    # A database adopted from before migrations (revision 0001 stamped on what it had) may lack the
    # position columns and the detections table: nothing is located there, no detection to mark.
    inspector = sa.inspect(op.get_bind())
    located_ever = "x_m" in {column["name"] for column in inspector.get_columns("incidents")}
    if located_ever:
        op.execute(_FINAL_STAGE_OF_INCIDENT)
    else:
        op.execute(sa.text("UPDATE incidents SET stage = 'unlocated'"))
    if inspector.has_table("detections"):
        with op.batch_alter_table("detections") as batch:
            batch.add_column(sa.Column("directness", sa.Float, nullable=False, server_default="0"))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="located"))
        batch.drop_constraint("uq_delivery_rule_incident", type_="unique")
        batch.create_unique_constraint("uq_delivery_rule_incident_stage", ["rule_id", "incident_id", "stage"])
    if located_ever:
        op.execute(_FINAL_STAGE_OF_DELIVERY)


def downgrade() -> None:
    # Keeps the first delivery of each (rule, incident) so the old unique constraint holds.
    op.execute(
        sa.text(
            "DELETE FROM webhook_deliveries WHERE delivery_id NOT IN ("
            "SELECT MIN(delivery_id) FROM webhook_deliveries GROUP BY rule_id, incident_id)"
        )
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("uq_delivery_rule_incident_stage", type_="unique")
        batch.create_unique_constraint("uq_delivery_rule_incident", ["rule_id", "incident_id"])
        batch.drop_column("stage")
    with op.batch_alter_table("detections") as batch:
        batch.drop_column("directness")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_stage")
        batch.drop_column("revision")
        batch.drop_column("merged_into")
        batch.drop_column("stage")
