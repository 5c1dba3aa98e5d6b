"""The fusion node's batched writes: detections in one transaction with per-detection "new" flags,
incidents of one association turn in one transaction, and the reads a restart and a resend need."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from sed import wire
from sed.store import Store
from tests.unit.fusion.test_intake import detection


def incident_of(*detections: wire.Detection, incident_id: str = "inc-1") -> wire.Incident:
    return wire.Incident(
        incident_id=incident_id,
        label=wire.Label.SCREAM,
        score=0.9,
        origin_time_ns=1,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
        detection_ids=[d.detection_id for d in detections],
        sensor_ids=sorted({d.sensor_id for d in detections}),
        created_at_ns=1,
    )


def test_a_batch_flags_each_detection_new_once_and_notes_its_sensors(store: Store) -> None:
    now_ns = time.time_ns()
    first = [detection(1), detection(2, sensor_id="pole-2", x_m=20.0)]
    assert store.add_detections([(d, now_ns) for d in first]) == [True, True]
    again = [detection(2, sensor_id="pole-2", x_m=20.0), detection(3), detection(3), detection(1)]
    assert store.add_detections([(d, now_ns + 1) for d in again]) == [False, True, False, False]
    assert store.count_detections() == 3
    seen = {s.sensor_id: s.last_seen_ns for s in store.list_sensors()}
    assert seen == {"pole-1": now_ns + 1, "pole-2": now_ns}
    assert store.add_detections([]) == []


def test_a_refused_value_rolls_the_whole_batch_back(store: Store) -> None:
    bad = wire.Detection(
        **{f: getattr(detection(9), f) for f in wire.Detection.__struct_fields__} | {"arrival_time_ns": 2**63}
    )
    with pytest.raises((sa.exc.SQLAlchemyError, OverflowError)):  # SQLite: before the statement runs
        store.add_detections([(detection(1), 1), (bad, 1)])
    assert store.count_detections() == 0


def test_unassigned_among_names_the_stored_detections_no_incident_holds(store: Store) -> None:
    held, loose = detection(1), detection(2)
    store.add_detections([(held, 1), (loose, 1)])
    store.save_incident(incident_of(held), updated_at_ns=time.time_ns())
    assert store.unassigned_among([held.detection_id, loose.detection_id, "never-stored"]) == {loose.detection_id}


def test_incidents_saved_in_one_batch_commit_together_or_not_at_all(store: Store) -> None:
    a, b = detection(1), detection(2)
    store.add_detections([(a, 1), (b, 1)])
    with pytest.raises(RuntimeError), store.batch():
        store.save_incident(incident_of(a, incident_id="inc-a"), updated_at_ns=1)
        raise RuntimeError("the turn failed after the first incident")
    assert store.list_incidents() == []
    with store.batch():
        store.save_incident(incident_of(a, incident_id="inc-a"), updated_at_ns=1)
        store.save_incident(incident_of(b, incident_id="inc-b"), updated_at_ns=1)
    assert {i.incident_id for i in store.list_incidents()} == {"inc-a", "inc-b"}


def test_open_incidents_are_the_recent_ones_operators_have_not_closed_with_their_detections(store: Store) -> None:
    a, b, c = detection(1), detection(2, sensor_id="pole-2", x_m=20.0), detection(3)
    store.add_detections([(a, 1), (b, 1), (c, 1)])
    now_ns = time.time_ns()
    store.save_incident(incident_of(a, b, incident_id="open"), updated_at_ns=now_ns)
    store.save_incident(incident_of(c, incident_id="closed"), updated_at_ns=now_ns)
    store.review_incident("closed", username="op", action="false_alarm", text=None, at_ns=now_ns)
    ((incident, members),) = store.open_incidents(updated_since_ns=now_ns - 1)
    assert incident.incident_id == "open" and sorted(d.detection_id for d in members) == ["pole-1:1", "pole-2:2"]
    assert store.open_incidents(updated_since_ns=now_ns + 10**12) == []
