"""Each message in isolation: stored and acked, or quarantined and rejected; the next one is handled."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from sed import wire
from sed.config import FusionSection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.intake import FusionMetrics, Intake, QuarantineReason
from sed.fusion.receiver import Envelope
from sed.store import Store

S = 1_000_000_000


class FakeReceiver:
    """Records the answers the node gives."""

    def __init__(self) -> None:
        self.acks: list[list[str]] = []
        self.rejects: list[tuple[list[str], str]] = []

    def ack(self, _routing_id: bytes, message_ids: list[str]) -> None:
        self.acks.append(message_ids)

    def reject(self, _routing_id: bytes, message_ids: list[str], reason: str) -> None:
        self.rejects.append((message_ids, reason))


def detection(n: int, *, sensor_id: str = "pole-1", x_m: float = 10.0, arrival_time_ns: int | None = None):
    # Built directly, so without the wire's validation: what a future bug or a gap in it would let through.
    return wire.Detection(
        detection_id=f"{sensor_id}:{n}",
        sensor_id=sensor_id,
        label=wire.Label.SCREAM,
        score=0.9,
        arrival_time_ns=1_700_000_000 * S + n if arrival_time_ns is None else arrival_time_ns,
        arrival_uncertainty_ns=100_000,
        duration_ms=40.0,
        peak_dbfs=-12.0,
        position=wire.Position(x_m=x_m, y_m=0.0),
        clock_status=wire.ClockStatus.SYNCED,
    )


def envelope(message: wire.Message, sensor_id: str = "pole-1") -> Envelope:
    return Envelope(routing_id=b"conn", sensor_id=sensor_id, message=message)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'fusion.sqlite'}")
    yield s
    s.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def intake(store: Store, registry: CollectorRegistry) -> Intake:
    config = FusionSection.model_validate({"secret_key_file": "x", "authorized_keys_dir": "y"})
    builder = IncidentBuilder(config, temperature_c=15.0, site_radius_m=2000.0)
    return Intake(store=store, builder=builder, receiver=FakeReceiver(), metrics=FusionMetrics(registry))


def quarantined(intake: Intake, reason: QuarantineReason) -> float:
    return metric(intake, "sed_fusion_quarantined_total", reason=str(reason))


def metric(intake: Intake, name: str, **labels: str) -> float:
    return intake.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_detection_the_builder_cannot_take_is_never_stored_and_the_next_one_is(intake: Intake, store: Store) -> None:
    bad = detection(1, x_m=math.nan)
    intake.handle(envelope(bad))
    assert store.count_detections() == 0  # refused before it was stored: no ack, no silent loss
    assert intake.receiver.acks == []
    ((ids, reason),) = intake.receiver.rejects
    assert ids == ["pole-1:1"] and reason.startswith("admission: WireError") and "position.x_m = nan" in reason
    (entry,) = store.quarantine.entries(payload_bytes=wire.MAX_MESSAGE_BYTES)
    assert (entry.sensor_id, entry.message_type, entry.message_id, entry.reason) == (
        "pole-1",
        "Detection",
        "pole-1:1",
        "admission",
    )
    kept = msgspec.msgpack.decode(entry.payload)
    assert kept["detection_id"] == "pole-1:1" and math.isnan(kept["position"]["x_m"])
    assert quarantined(intake, QuarantineReason.ADMISSION) == 1

    intake.handle(envelope(detection(2)))
    assert store.count_detections() == 1 and intake.receiver.acks == [["pole-1:2"]]
    assert len(intake.queue) == 1  # handed to the association worker


def test_a_value_the_database_refuses_is_quarantined_and_rejected(intake: Intake, store: Store) -> None:
    clip = wire.EvidenceClip(detection_id="pole-1:1", sensor_id="pole-1", start_time_ns=2**63, sample_rate_hz=16000)
    intake.handle(envelope(clip))  # SQLite: "Python int too large to convert to SQLite INTEGER"
    assert intake.receiver.rejects[0][0] == ["clip:pole-1:1"] and intake.receiver.rejects[0][1].startswith("store:")
    (entry,) = store.quarantine.entries()
    assert entry.reason == "store" and entry.message_type == "EvidenceClip" and entry.payload is None
    assert entry.payload_bytes > 0
    assert quarantined(intake, QuarantineReason.STORE) == 1


def test_a_stored_acked_detection_the_builder_then_fails_on_is_quarantined_for_an_admin_not_lost_silently(
    intake: Intake, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_add(_detection: wire.Detection, *, received_at_ns: int) -> None:
        raise RuntimeError("a bug in the builder")

    monkeypatch.setattr(intake.builder, "add", broken_add)
    intake.handle(envelope(detection(1)))
    intake.handle(envelope(detection(2)))
    assert intake.receiver.acks == [["pole-1:1"], ["pole-1:2"]]  # acked after the commit, before association
    assert intake.poll(time.time_ns()) == []
    assert intake.receiver.rejects == []  # acked already: nothing to reject
    assert sorted(e.message_id for e in store.quarantine.entries()) == ["pole-1:1", "pole-1:2"]
    assert {e.reason for e in store.quarantine.entries()} == {"association"}
    assert quarantined(intake, QuarantineReason.ASSOCIATION) == 2
    assert store.count_detections() == 2  # still stored, unassigned: a restart tries it again


def test_an_unreachable_database_leaves_the_message_unanswered_for_the_sensor_to_resend(
    intake: Intake, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_args: object, **_kwargs: object) -> bool:
        raise sa.exc.OperationalError("INSERT …", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "add_detections", unavailable)
    intake.handle(envelope(detection(1)))
    assert intake.receiver.acks == [] and intake.receiver.rejects == []
    assert metric(intake, "sed_fusion_store_unavailable_total") == 1
    monkeypatch.undo()
    assert store.quarantine.count() == 0
    intake.handle(envelope(detection(1)))
    assert intake.receiver.acks == [["pole-1:1"]]


def test_a_message_type_sensors_do_not_send_is_quarantined(intake: Intake, store: Store) -> None:
    intake.handle(envelope(wire.Ack(message_ids=["x"])))
    (entry,) = store.quarantine.entries()
    assert entry.reason == "unexpected_type" and entry.message_type == "Ack"
    assert intake.receiver.rejects == []  # nothing to stop resending: an ack has no outbox id


def test_a_detection_association_fails_on_is_quarantined_and_the_others_go_on(
    intake: Intake, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake.handle(envelope(detection(1, sensor_id="pole-good"), "pole-good"))
    intake.handle(envelope(detection(2, sensor_id="pole-bad", x_m=30.0), "pole-bad"))
    intake.poll(time.time_ns())  # both in the builder
    bad = detection(2, sensor_id="pole-bad", x_m=30.0)
    real_poll = intake.builder.poll

    def poll(now_ns: int) -> list[wire.Incident]:
        raise FloatingPointError("a solver blew up")

    def evict_failing(now_ns: int) -> list[tuple[wire.Detection, int]]:
        monkeypatch.setattr(intake.builder, "poll", real_poll)
        kept = intake.builder.clear()
        for d, received_at_ns in kept:
            if d.detection_id != bad.detection_id:
                intake.builder.add(d, received_at_ns=received_at_ns)
        return [(d, at) for d, at in kept if d.detection_id == bad.detection_id]

    monkeypatch.setattr(intake.builder, "poll", poll)
    monkeypatch.setattr(intake.builder, "evict_failing", evict_failing)
    later_ns = time.time_ns() + 60 * S
    assert intake.poll(later_ns) == []  # association failed: the culprit is found and removed
    assert [e.message_id for e in store.quarantine.entries()] == ["pole-bad:2"]
    assert intake.receiver.rejects == []  # it was acked already: nothing to reject
    (incident,) = intake.poll(later_ns)  # the innocent one is still there and becomes an incident
    assert incident.sensor_ids == ["pole-good"]
    assert store.get_incident(incident.incident_id) is not None
    assert quarantined(intake, QuarantineReason.ASSOCIATION) == 1


def test_an_incident_the_database_cannot_take_now_is_stored_at_a_later_poll(
    intake: Intake, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake.handle(envelope(detection(1)))
    real_save = store.save_incident

    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise sa.exc.OperationalError("UPDATE …", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "save_incident", unavailable)
    now_ns = time.time_ns() + 60 * S
    assert intake.poll(now_ns) == []
    monkeypatch.setattr(store, "save_incident", real_save)
    assert intake.poll(now_ns + S // 2) == []  # retried no more often than once a second
    (incident,) = intake.poll(now_ns + 2 * S)
    assert store.get_incident(incident.incident_id) is not None


def test_a_heartbeat_position_keeps_its_pole_counting_for_the_wait_bound(intake: Intake) -> None:
    intake.handle(envelope(detection(1)))
    heartbeat = wire.Heartbeat(
        sensor_id="pole-2",
        sent_at_ns=1,
        clock_status=wire.ClockStatus.SYNCED,
        position=wire.Position(x_m=353.0, y_m=0.0),
    )
    intake.handle(envelope(heartbeat, "pole-2"))
    assert intake.receiver.acks[-1] == []
    intake.poll(time.time_ns())  # the association worker notes the position
    assert intake.builder.transit_ns == pytest.approx(343.0 / 340.6 * S, rel=0.01)


def test_when_even_finding_the_culprit_fails_the_builder_starts_afresh_and_the_loop_goes_on(
    intake: Intake, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake.handle(envelope(detection(1)))
    later_ns = time.time_ns() + 60 * S

    def fails(_now_ns: int) -> list:
        raise MemoryError("no room to copy the builder")

    intake.poll(time.time_ns())  # into the builder before it breaks
    monkeypatch.setattr(intake.builder, "poll", lambda _now_ns: 1 / 0)
    monkeypatch.setattr(intake.builder, "evict_failing", fails)
    assert intake.poll(later_ns) == []
    assert [e.message_id for e in store.quarantine.entries()] == ["pole-1:1"]
    monkeypatch.undo()
    assert intake.builder.n_pending == 0 and intake.poll(later_ns) == []
    intake.handle(envelope(detection(2)))
    (incident,) = intake.poll(later_ns + 60 * S)
    assert incident.detection_ids == ["pole-1:2"]
