"""The false-alarm policy in the store, on SQLite and PostgreSQL: incident priorities, noisy flags, rates."""

from __future__ import annotations

from pathlib import Path

import msgspec
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from sed import wire
from sed.store import ReviewAction, Store, migrate
from tests.unit.store.test_store import detection, incident

Priority = wire.IncidentPriority


def test_an_incident_keeps_its_priority_and_an_update_upgrades_it_without_touching_the_status(store: Store) -> None:
    store.add_detection(detection(1), received_at_ns=10)
    lone = msgspec.structs.replace(incident("i1", ["pole-1:1"], origin_ns=100), priority=Priority.UNCONFIRMED)
    store.save_incident(lone, updated_at_ns=200)
    assert store.get_incident("i1").priority is Priority.UNCONFIRMED
    store.review_incident("i1", username="oscar", action=ReviewAction.ACKNOWLEDGE, text=None, at_ns=250)
    store.save_incident(msgspec.structs.replace(lone, priority=Priority.ALERT), updated_at_ns=300)
    loaded = store.get_incident("i1")
    assert (loaded.priority, loaded.status) == (Priority.ALERT, wire.IncidentStatus.ACKNOWLEDGED)


def test_incidents_are_filtered_by_priority(store: Store) -> None:
    for n, priority in enumerate(Priority):
        store.save_incident(
            msgspec.structs.replace(incident(f"i{n}", [], origin_ns=100 + n), priority=priority), updated_at_ns=1
        )
    assert [i.priority for i in store.list_incidents(priorities=[Priority.SUPPRESSED])] == [Priority.SUPPRESSED]
    held = store.list_incidents(priorities=[Priority.UNCONFIRMED, Priority.SUPPRESSED])
    assert {i.priority for i in held} == {Priority.UNCONFIRMED, Priority.SUPPRESSED}
    assert len(store.list_incidents()) == 3


def test_noisy_flags_are_set_cleared_and_replaced_per_sensor(store: Store) -> None:
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.touch_sensor(sensor, wire.Position(x_m=n, y_m=0), seen_at_ns=5)
    assert store.set_noisy_labels("pole-1", [wire.Label.SCREAM, wire.Label.GUNSHOT]) is True
    assert store.set_noisy_labels("pole-9", [wire.Label.SCREAM]) is False  # unknown sensor: nothing to flag
    flags = {s.sensor_id: s.noisy_labels for s in store.list_sensors()}
    assert flags == {"pole-1": (wire.Label.GUNSHOT, wire.Label.SCREAM), "pole-2": (), "pole-3": ()}

    store.replace_noisy_labels({"pole-2": {wire.Label.GLASS_BREAK}})
    flags = {s.sensor_id: s.noisy_labels for s in store.list_sensors()}
    assert flags == {"pole-1": (), "pole-2": (wire.Label.GLASS_BREAK,), "pole-3": ()}
    store.set_noisy_labels("pole-2", [])
    assert all(s.noisy_labels == () for s in store.list_sensors())


def test_recent_detections_are_the_ones_received_since_oldest_first(store: Store) -> None:
    store.add_detection(detection(1, "pole-1"), received_at_ns=30)
    store.add_detection(detection(2, "pole-2", wire.Label.SCREAM), received_at_ns=20)
    store.add_detection(detection(3, "pole-1"), received_at_ns=5)
    assert store.recent_detections(received_since_ns=10) == [
        ("pole-2", wire.Label.SCREAM, 20),
        ("pole-1", wire.Label.GUNSHOT, 30),
    ]


def test_incidents_stored_before_the_policy_are_alerts_after_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # a database of the revision before the policy, holding an incident
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.commit()
        conn.execute(
            sa.text(
                "INSERT INTO incidents (incident_id, label, score, origin_time_ns, n_shots, status, created_at_ns, "
                "updated_at_ns) VALUES ('old', 'gunshot', 0.4, 1, 1, 'new', 1, 1)"
            )
        )
        conn.commit()
    engine.dispose()
    store = Store(url)
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        assert store.get_incident("old").priority is Priority.ALERT
    finally:
        store.close()
