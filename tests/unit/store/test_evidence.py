"""Evidence clips: retention by age, and the reviewed-clip corpus."""

from __future__ import annotations

from sed import wire
from sed.store import ReviewAction, Store
from tests.unit.store.test_store import detection, incident


def _clip(detection_id: str, sensor_id: str) -> wire.EvidenceClip:
    return wire.EvidenceClip(
        detection_id=detection_id, sensor_id=sensor_id, start_time_ns=1, sample_rate_hz=16000, data=b"fLaC" + b"\0" * 8
    )


def test_clips_received_before_the_cutoff_are_deleted(store: Store) -> None:
    store.add_clip(_clip("pole-1:1", "pole-1"), received_at_ns=100)
    store.add_clip(_clip("pole-2:1", "pole-2"), received_at_ns=200)
    assert store.evidence.with_clips(["pole-1:1", "pole-2:1", "pole-3:1"]) == {"pole-1:1", "pole-2:1"}
    assert store.evidence.delete_received_before(150) == 1
    assert store.evidence.get_clip("pole-1:1") is None
    kept = store.evidence.get_clip("pole-2:1")
    assert kept is not None and kept.data.startswith(b"fLaC") and kept.sensor_id == "pole-2"


def test_reviewed_clips_carry_the_verdict_and_the_latest_reason(store: Store) -> None:
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=10)
        store.add_clip(_clip(f"{sensor}:{n}", sensor), received_at_ns=10)
    store.save_incident(incident("shot", ["pole-1:0", "pole-2:1"], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("bang", ["pole-3:2"], origin_ns=200), updated_at_ns=1)
    store.save_incident(incident("open", [], origin_ns=300), updated_at_ns=1)
    store.review_incident("shot", username="ann", action=ReviewAction.CONFIRM, text=None, at_ns=5)
    store.review_incident("bang", username="ann", action=ReviewAction.FALSE_ALARM, text="door slam", at_ns=6)
    store.review_incident("bang", username="bob", action=ReviewAction.FALSE_ALARM, text="car door", at_ns=7)
    store.review_incident("bang", username="bob", action=ReviewAction.NOTE, text="not the reason", at_ns=8)
    rows = list(store.evidence.reviewed_clips([wire.IncidentStatus.CONFIRMED, wire.IncidentStatus.FALSE_ALARM]))
    assert [(r.incident_id, r.clip.detection_id, r.status, r.reason) for r in rows] == [
        ("shot", "pole-1:0", wire.IncidentStatus.CONFIRMED, None),
        ("shot", "pole-2:1", wire.IncidentStatus.CONFIRMED, None),
        ("bang", "pole-3:2", wire.IncidentStatus.FALSE_ALARM, "car door"),
    ]
