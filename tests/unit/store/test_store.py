"""The store on SQLite and PostgreSQL: idempotent writes, incident upserts, filters, reviews, sensors."""

from __future__ import annotations

import sqlalchemy as sa

from sed import wire
from sed.store import Area, ReviewAction, Store


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


def incident(
    incident_id: str, ids: list[str], *, origin_ns: int, label: wire.Label = wire.Label.GUNSHOT
) -> wire.Incident:
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


def test_saving_a_growing_incident_reuses_the_same_statements(store: Store) -> None:
    # The driver keeps each distinct statement text prepared (SQLite: the last 128 per connection),
    # each as large as its text: statements whose text grew with the incident held memory that
    # grew with it, without bound while a detection storm kept one incident open.
    statements: set[str] = set()

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.add(statement)

    ids: list[str] = []
    per_size: list[frozenset[str]] = []
    for n in range(40):
        store.add_detection(detection(n), received_at_ns=10)
        ids.append(f"pole-1:{n}")
        statements.clear()
        sa.event.listen(store.engine, "before_cursor_execute", record)
        store.save_incident(incident("i1", ids, origin_ns=100), updated_at_ns=200 + n)
        sa.event.remove(store.engine, "before_cursor_execute", record)
        per_size.append(frozenset(statements))
    assert set(per_size[1:]) == {per_size[1]}  # every update of it, from 2 to 40 detections
    assert [d.detection.detection_id for d in store.detections_of("i1")] == ids


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


def test_area_filter_keeps_incidents_inside_the_box_and_drops_unlocated(store: Store) -> None:
    store.save_incident(incident("in", [], origin_ns=100), updated_at_ns=1)  # at (1, 2)
    far = wire.Incident(**{**_fields(incident("far", [], origin_ns=200)), "position": wire.Position(x_m=500, y_m=2)})
    store.save_incident(far, updated_at_ns=1)
    nowhere = wire.Incident(
        **{**_fields(incident("nowhere", [], origin_ns=300)), "position": None, "covariance_m2": None}
    )
    store.save_incident(nowhere, updated_at_ns=1)
    inside = store.list_incidents(area=Area(x_min_m=0, x_max_m=10, y_min_m=0, y_max_m=10))
    assert [i.incident_id for i in inside] == ["in"]
    assert [i.incident_id for i in store.list_incidents(area=Area(x_min_m=100))] == ["far"]


def _fields(message: wire.Incident) -> dict:
    return {name: getattr(message, name) for name in message.__struct_fields__}


def test_review_sets_status_keeps_the_trail_and_survives_a_fusion_update(store: Store) -> None:
    store.add_detection(detection(1), received_at_ns=10)
    store.save_incident(incident("i1", ["pole-1:1"], origin_ns=100), updated_at_ns=1)
    reviewed = store.review_incident("i1", username="ann", action=ReviewAction.FALSE_ALARM, text="fireworks", at_ns=50)
    assert reviewed is not None and reviewed.status is wire.IncidentStatus.FALSE_ALARM
    store.review_incident("i1", username="bob", action=ReviewAction.NOTE, text="seen on camera 4", at_ns=60)
    # The fusion node grows the incident (a second shot): the operators' verdict stays.
    store.save_incident(incident("i1", ["pole-1:1"], origin_ns=100), updated_at_ns=70)
    loaded = store.get_incident("i1")
    assert loaded is not None and loaded.status is wire.IncidentStatus.FALSE_ALARM
    trail = store.reviews_of("i1")
    assert [(r.username, r.action, r.text) for r in trail] == [
        ("ann", ReviewAction.FALSE_ALARM, "fireworks"),
        ("bob", ReviewAction.NOTE, "seen on camera 4"),
    ]
    assert store.review_incident("missing", username="ann", action=ReviewAction.CONFIRM, text=None, at_ns=1) is None
    assert store.review_incident("missing", username="ann", action=ReviewAction.NOTE, text="x", at_ns=1) is None


def test_admin_describes_and_forgets_sensors(store: Store) -> None:
    store.touch_sensor("pole-1", wire.Position(x_m=3, y_m=4), seen_at_ns=60)
    assert store.describe_sensor("pole-1", "corner of Main St and 5th") is True
    assert store.describe_sensor("pole-9", "nowhere") is False
    assert store.list_sensors()[0].description == "corner of Main St and 5th"
    assert store.forget_sensor("pole-1") is True
    assert store.list_sensors() == []


def test_recent_detections_no_incident_holds_are_listed_for_a_restarted_node(store: Store) -> None:
    for n, received_ns in ((1, 100), (2, 300), (3, 200), (4, 400)):
        store.add_detection(detection(n), received_at_ns=received_ns)
    store.save_incident(incident("inc-1", ["pole-1:4"], origin_ns=1), updated_at_ns=5)
    unassigned = store.unassigned_detections(received_since_ns=150)
    assert [(s.detection.detection_id, s.received_at_ns) for s in unassigned] == [("pole-1:3", 200), ("pole-1:2", 300)]
    assert unassigned[0].detection == detection(3) and unassigned[0].incident_id is None
