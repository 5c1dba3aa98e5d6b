"""The intake apart from association: batches stored in one transaction and acked after the commit,
never blocked behind association; resends and restarts lose nothing for the operator."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from sed import wire
from sed.config import FusionSection
from sed.fusion import associator as associator_module
from sed.fusion.associator import Arrival, AssociationQueue
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.intake import FusionMetrics, Intake
from sed.fusion.receiver import Envelope
from sed.store import Store
from tests.unit.fusion.test_intake import FakeReceiver, detection, envelope

S = 1_000_000_000
CONFIG = FusionSection.model_validate({"secret_key_file": "x", "authorized_keys_dir": "y"})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'fusion.sqlite'}")
    yield s
    s.close()


def make_intake(store: Store, builder: IncidentBuilder | None = None) -> Intake:
    builder = builder or IncidentBuilder(CONFIG, temperature_c=15.0, site_radius_m=2000.0)
    return Intake(store=store, builder=builder, receiver=FakeReceiver(), metrics=FusionMetrics(CollectorRegistry()))


def on(connection: bytes, message: wire.Message, sensor_id: str = "pole-1") -> Envelope:
    return Envelope(routing_id=connection, sensor_id=sensor_id, message=message)


def labelled(d: wire.Detection, label: wire.Label) -> wire.Detection:
    return msgspec.structs.replace(d, label=label)


class AckingReceiver(FakeReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.by_connection: list[tuple[bytes, list[str]]] = []

    def ack(self, routing_id: bytes, message_ids: list[str]) -> None:
        super().ack(routing_id, message_ids)
        self.by_connection.append((routing_id, message_ids))


def test_a_batch_is_stored_in_one_transaction_and_acked_once_per_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = make_intake(store)
    intake.receiver = AckingReceiver()
    commits = []
    monkeypatch.setattr(store, "add_detection", lambda *a, **k: pytest.fail("stored one by one"))
    real = store.add_detections
    monkeypatch.setattr(store, "add_detections", lambda received: commits.append(len(received)) or real(received))
    batch = [on(b"a", detection(n)) for n in range(3)] + [
        on(b"b", detection(n, sensor_id="pole-2"), "pole-2") for n in range(2)
    ]
    intake.handle_batch(batch)
    assert commits == [5] and store.count_detections() == 5
    assert intake.receiver.by_connection == [
        (b"a", ["pole-1:0", "pole-1:1", "pole-1:2"]),
        (b"b", ["pole-2:0", "pole-2:1"]),
    ]
    assert len(intake.queue) == 5
    assert {s.sensor_id for s in store.list_sensors()} == {"pole-1", "pole-2"}  # noted as seen in the same commit


def test_a_value_the_database_refuses_quarantines_only_its_message_of_the_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = make_intake(store)

    def refuses(received: Sequence[tuple[wire.Detection, int]]) -> list[bool]:
        raise sa.exc.IntegrityError("INSERT …", {}, Exception("value out of range"))

    real_one = store.add_detection

    def one(d: wire.Detection, *, received_at_ns: int) -> bool:
        if d.detection_id == "pole-1:2":
            raise sa.exc.DataError("INSERT …", {}, Exception("value out of range"))
        return real_one(d, received_at_ns=received_at_ns)

    monkeypatch.setattr(store, "add_detections", refuses)
    monkeypatch.setattr(store, "add_detection", one)
    intake.handle_batch([envelope(detection(n)) for n in range(4)])
    assert store.count_detections() == 3
    assert intake.receiver.acks == [["pole-1:0"], ["pole-1:1"], ["pole-1:3"]]
    ((ids, reason),) = intake.receiver.rejects
    assert ids == ["pole-1:2"] and reason.startswith("store: DataError")
    assert [e.message_id for e in store.quarantine.entries()] == ["pole-1:2"]
    assert len(intake.queue) == 3


def test_an_unreachable_database_leaves_the_whole_batch_unacked(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    intake = make_intake(store)

    def unavailable(*_args: object, **_kwargs: object) -> list[bool]:
        raise sa.exc.OperationalError("INSERT …", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "add_detections", unavailable)
    intake.handle_batch([envelope(detection(n)) for n in range(3)])
    assert intake.receiver.acks == [] and intake.receiver.rejects == [] and len(intake.queue) == 0
    assert intake.metrics.registry.get_sample_value("sed_fusion_store_unavailable_total") == 3


def test_acks_go_out_while_association_is_busy(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    intake = make_intake(store)
    busy, release = threading.Event(), threading.Event()
    real_poll = intake.builder.poll

    def slow_poll(now_ns: int) -> list[wire.Incident]:
        busy.set()
        release.wait(10)
        return real_poll(now_ns)

    monkeypatch.setattr(intake.builder, "poll", slow_poll)
    worker = threading.Thread(target=intake.poll, args=(time.time_ns(),))
    worker.start()
    try:
        assert busy.wait(5)
        intake.handle_batch([envelope(detection(n)) for n in range(3)])  # would hang if it waited
        assert intake.receiver.acks == [["pole-1:0", "pole-1:1", "pole-1:2"]]
    finally:
        release.set()
        worker.join(5)


def test_a_resent_stored_detection_no_incident_holds_goes_to_association_once(store: Store) -> None:
    before_the_kill = make_intake(store)
    before_the_kill.handle(envelope(detection(1)))  # stored and acked; the node dies before associating it
    after = make_intake(store)  # a fresh builder (no resume here: the resend alone must bring it back)
    after.handle(envelope(detection(1)))  # the sensor resends: its ack was lost
    after.handle(envelope(detection(1)))  # and again: the builder takes it once
    assert after.receiver.acks == [["pole-1:1"], ["pole-1:1"]]
    (incident,) = after.poll(time.time_ns() + 60 * S)
    assert incident.detection_ids == ["pole-1:1"]
    after.handle(envelope(detection(1)))  # an incident holds it now: acked, nothing more
    assert len(after.queue) == 0 and after.poll(time.time_ns() + 120 * S) == []


def test_gunshots_are_taken_ahead_of_other_classes() -> None:
    queue = AssociationQueue()
    scream = Arrival(detection=detection(1), received_at_ns=1, pole_id="pole-1")
    shot = Arrival(detection=labelled(detection(2), wire.Label.GUNSHOT), received_at_ns=2, pole_id="pole-1")
    queue.put([scream, scream, shot], now_ns=0)
    assert [a.detection.label for a in queue.take(2)] == [wire.Label.GUNSHOT, wire.Label.SCREAM]
    assert len(queue) == 1


def test_a_backlog_is_flagged_overloaded_once_and_cleared_once_and_nothing_dropped(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    intake = make_intake(store)
    monkeypatch.setattr(associator_module, "OVERLOAD_ENTRIES", 5)
    intake.handle_batch([envelope(detection(n)) for n in range(8)])
    now_ns = time.time_ns()
    with caplog.at_level(logging.INFO, logger="sed.fusion"):
        assert intake.association.check_overload(now_ns) == "overloaded: association 0.0 s behind"
        assert intake.association.check_overload(now_ns + 2 * S) == "overloaded: association 2.0 s behind"
        gauge = intake.metrics.registry.get_sample_value
        assert gauge("sed_fusion_overloaded") == 1 and gauge("sed_fusion_backlog") == 8
        incidents = intake.poll(time.time_ns() + 60 * S)  # the worker catches up: nothing was dropped
        assert sorted(d for i in incidents for d in i.detection_ids) == [f"pole-1:{n}" for n in range(8)]
        assert intake.association.check_overload(time.time_ns()) is None
        assert gauge("sed_fusion_overloaded") == 0
    transitions = [r.getMessage() for r in caplog.records if "overloaded" in r.getMessage()]
    assert len(transitions) == 2 and transitions[0].startswith("overloaded: association")
    assert transitions[1].startswith("no longer overloaded")


class RestoringBuilder(IncidentBuilder):
    """Records what a start takes back (the builder's own ``restore`` is tested with the builder)."""

    def __init__(self) -> None:
        super().__init__(CONFIG, temperature_c=15.0, site_radius_m=2000.0)
        self.restored: list[tuple[str, list[str]]] = []

    def restore(self, incident: wire.Incident, detections: Sequence[wire.Detection], *, now_ns: int) -> None:
        self.restored.append((incident.incident_id, [d.detection_id for d in detections]))


def test_a_start_takes_back_open_recent_incidents_with_their_detections_and_unassigned_detections(store: Store) -> None:
    first = make_intake(store)
    first.handle(envelope(detection(1)))
    first.handle(envelope(detection(2, sensor_id="pole-2", x_m=20.0), "pole-2"))
    committed = first.poll(time.time_ns() + 60 * S)
    assert committed
    first.handle(envelope(detection(3, sensor_id="pole-3", x_m=30.0), "pole-3"))  # acked, then the node dies
    closed = committed[0]
    if len(committed) > 1:
        store.review_incident(closed.incident_id, username="op", action="false_alarm", text=None, at_ns=time.time_ns())
    builder = RestoringBuilder()
    restarted = make_intake(store, builder)
    restarted.association.resume(lookback_s=300.0, now_ns=time.time_ns())
    still_open = [i for i in committed if len(committed) == 1 or i.incident_id != closed.incident_id]
    assert builder.restored == [(i.incident_id, list(i.detection_ids)) for i in still_open]
    assert builder.n_pending == 1  # pole-3's detection, which no incident holds
    long_after = make_intake(store, RestoringBuilder())
    long_after.association.resume(lookback_s=300.0, now_ns=time.time_ns() + 3600 * S)
    assert long_after.builder.restored == [] and long_after.builder.n_pending == 0


def test_a_batch_commit_of_incidents_drops_only_the_one_the_database_refuses(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = make_intake(store)
    intake.handle(envelope(detection(1)))
    intake.handle(envelope(labelled(detection(2, sensor_id="pole-2"), wire.Label.GLASS_BREAK), "pole-2"))
    real_save = store.save_incident
    refused: list[str] = []

    def save(incident: wire.Incident, *, updated_at_ns: int) -> None:
        if "pole-2" in incident.sensor_ids:
            refused.append(incident.incident_id)
            raise sa.exc.IntegrityError("UPDATE …", {}, Exception("refused"))
        real_save(incident, updated_at_ns=updated_at_ns)

    monkeypatch.setattr(store, "save_incident", save)
    committed = intake.poll(time.time_ns() + 60 * S)
    assert [i.sensor_ids for i in committed] == [["pole-1"]]
    assert [i.sensor_ids for i in store.list_incidents()] == [["pole-1"]]
    assert len(set(refused)) == 1  # tried in the batch, then alone: dropped, logged and counted once
    assert intake.metrics.registry.get_sample_value("sed_fusion_incident_errors_total", {"transient": "false"}) == 1
