"""The store: idempotent writes, incident upserts with their detections, filters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sed import wire
from sed.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'sed.sqlite'}")
    yield s
    s.close()


def detection(n: int, sensor: str = "pole-1", label: wire.Label = wire.Label.GUNSHOT) -> wire.Detection:
    return wire.Detection(
        detection_id=f"{sensor}:{n}",
        sensor_id=sensor,
        label=label,
        score=0.5 + n / 100,
        arrival_time_ns=1_000_000 * n,
        arrival_uncertainty_ns=1000,
        duration_ms=100,
        peak_dbfs=-20,
        position=wire.Position(x_m=n, y_m=2 * n, z_m=6),
        clock_status=wire.ClockStatus.SYNCED,
        model_version="m1",
    )


def incident(incident_id: str, ids: list[str], *, origin_ns: int, label: wire.Label = wire.Label.GUNSHOT) -> wire.Incident:
    return wire.Incident(
        incident_id=incident_id,
        label=label,
        score=0.9,
        origin_time_ns=origin_ns,
        position=wire.Position(x_m=1.0, y_m=2.0, z_m=0.0),
        uncertainty_m=3.5,
        covariance_m2=[1.0, 0.1, 2.0],
        detection_ids=ids,
        sensor_ids=[],
        created_at_ns=origin_ns + 5,
    )


def test_a_resent_detection_is_stored_once(store: Store) -> None:
    assert store.add_detection(detection(1), received_at_ns=10) is True
    assert store.add_detection(detection(1), received_at_ns=11) is False
    assert store.count_detections() == 1


def test_incident_round_trips_with_its_detections_and_updates_in_place(store: Store) -> None:
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=10)
    first = incident("i1", ["pole-1:0", "pole-2:1"], origin_ns=100)
    store.save_incident(first, updated_at_ns=200)
    loaded = store.get_incident("i1")
    assert loaded is not None
    assert loaded.detection_ids == ["pole-1:0", "pole-2:1"]
    assert loaded.sensor_ids == ["pole-1", "pole-2"]
    assert loaded.covariance_m2 == [1.0, 0.1, 2.0]
    assert loaded.position == first.position
    grown = incident("i1", ["pole-1:0", "pole-2:1", "pole-3:2"], origin_ns=100)
    store.save_incident(grown, updated_at_ns=300)
    assert [d.detection.sensor_id for d in store.detections_of("i1")] == ["pole-1", "pole-2", "pole-3"]
    assert len(store.list_incidents()) == 1


def test_unlocated_incident_keeps_no_position(store: Store) -> None:
    store.add_detection(detection(1), received_at_ns=10)
    unlocated = wire.Incident(
        incident_id="u",
        label=wire.Label.SCREAM,
        score=0.7,
        origin_time_ns=5,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
        detection_ids=["pole-1:1"],
        sensor_ids=["pole-1"],
    )
    store.save_incident(unlocated, updated_at_ns=6)
    loaded = store.get_incident("u")
    assert loaded is not None and loaded.position is None and loaded.covariance_m2 is None


def test_list_filters_by_time_class_and_status_newest_first(store: Store) -> None:
    store.save_incident(incident("a", [], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("b", [], origin_ns=200, label=wire.Label.SCREAM), updated_at_ns=1)
    store.save_incident(incident("c", [], origin_ns=300), updated_at_ns=1)
    assert [i.incident_id for i in store.list_incidents()] == ["c", "b", "a"]
    assert [i.incident_id for i in store.list_incidents(since_ns=150, until_ns=300)] == ["b"]
    assert [i.incident_id for i in store.list_incidents(labels=[wire.Label.GUNSHOT])] == ["c", "a"]
    assert store.list_incidents(statuses=[wire.IncidentStatus.CONFIRMED]) == []
    assert [i.incident_id for i in store.list_incidents(limit=1, offset=1)] == ["b"]
    assert store.get_incident("missing") is None


def test_sensor_keeps_its_last_heartbeat_and_position(store: Store) -> None:
    heartbeat = wire.Heartbeat(
        sensor_id="pole-1",
        sent_at_ns=5,
        clock_status=wire.ClockStatus.SYNCED,
        position=wire.Position(x_m=3, y_m=4),
        input_rms_dbfs=-55.0,
    )
    store.record_heartbeat(heartbeat, received_at_ns=50)
    store.touch_sensor("pole-1", wire.Position(x_m=3, y_m=4), seen_at_ns=60)
    (record,) = store.list_sensors()
    assert record.last_seen_ns == 60
    assert record.heartbeat == heartbeat
    assert record.position == wire.Position(x_m=3, y_m=4)
