"""Alembic migrations build exactly the tables the code queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sed import wire
from sed.store import Store, migrate
from sed.store.tables import metadata
from tests.unit.store.test_store import detection


def test_migrated_schema_equals_the_table_definitions(store: Store) -> None:
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert differences == []


def test_opening_twice_is_a_no_op_and_keeps_data(db_url: str) -> None:
    first = Store(db_url)
    first.add_detection(detection(1), received_at_ns=1)
    first.close()
    second = Store(db_url)
    assert second.count_detections() == 1
    second.close()


def test_a_database_from_before_migrations_is_adopted_and_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the schema sed wrote before it had migrations (revision 0001)
        conn.execute(
            sa.text(
                "CREATE TABLE sensors (sensor_id VARCHAR(64) PRIMARY KEY, x_m FLOAT, y_m FLOAT, "
                "z_m FLOAT, last_seen_ns BIGINT NOT NULL, heartbeat BLOB)"
            )
        )
        conn.execute(sa.text("INSERT INTO sensors VALUES ('pole-1', 1, 2, 3, 5, NULL)"))
        conn.execute(sa.text("CREATE TABLE incidents (incident_id VARCHAR(96) PRIMARY KEY)"))
    engine.dispose()
    store = Store(url)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    (sensor,) = store.list_sensors()
    assert sensor.position == wire.Position(x_m=1, y_m=2, z_m=3) and sensor.description is None
    store.close()
