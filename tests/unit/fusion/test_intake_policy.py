"""The fusion node's intake applies the false-alarm policy: priorities committed, transitions logged,
counted and stored, and a failing policy never loses an incident."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from sed import wire
from sed.config import FusionSection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.intake import INCIDENT_RETRY_NS, FusionMetrics, Intake
from sed.fusion.policy import FalseAlarmPolicy
from sed.store import Store
from tests.unit.fusion.test_intake import FakeReceiver, detection, envelope

S = 1_000_000_000
LATER_S = 30  # past the association wait: a lone detection is an incident by then


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'fusion.sqlite'}")
    yield s
    s.close()


def make_intake(store: Store, **scream: Any) -> Intake:
    config = FusionSection.model_validate(
        {"secret_key_file": "x", "authorized_keys_dir": "y", "policy": {"scream": scream}}
    )
    builder = IncidentBuilder(config, temperature_c=15.0, site_radius_m=2000.0)
    return Intake(
        store=store,
        builder=builder,
        receiver=FakeReceiver(),
        metrics=FusionMetrics(CollectorRegistry()),
        policy=FalseAlarmPolicy(config.policy),
    )


def metric(intake: Intake, name: str, **labels: str) -> float:
    return intake.metrics.registry.get_sample_value(name, labels) or 0.0


def later_ns() -> int:
    return time.time_ns() + LATER_S * S


def test_a_lone_low_confidence_detection_is_committed_unconfirmed_and_counted(store: Store) -> None:
    intake = make_intake(store, confirm_score=0.95)
    intake.handle(envelope(detection(1)))  # score 0.9, one pole
    (committed,) = intake.poll(later_ns())
    assert committed.priority is wire.IncidentPriority.UNCONFIRMED
    assert store.get_incident(committed.incident_id).priority is wire.IncidentPriority.UNCONFIRMED
    assert metric(intake, "sed_fusion_incidents_total", label="scream", priority="unconfirmed") == 1


def test_a_noisy_sensor_is_logged_counted_and_flagged_in_the_store(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    intake = make_intake(store, sensor_max_per_hour=2)
    with caplog.at_level(logging.WARNING, logger="sed.fusion"):
        for n in range(3):
            intake.handle(envelope(detection(n)))
        intake.poll(time.time_ns())
    (pole,) = store.list_sensors()
    assert pole.noisy_labels == (wire.Label.SCREAM,)
    assert metric(intake, "sed_fusion_noisy_sensors", label="scream") == 1
    assert metric(intake, "sed_fusion_noisy_sensors", label="gunshot") == 0
    noisy_lines = [r.getMessage() for r in caplog.records if "noisy" in r.getMessage()]
    assert noisy_lines == [
        "sensor 'pole-1' noisy for scream: 3 detections in the last hour "
        "(fusion.policy.scream.sensor_max_per_hour = 2); its uncorroborated incidents are not alerts"
    ]
    (committed, *_) = intake.poll(later_ns())
    assert committed.priority is wire.IncidentPriority.UNCONFIRMED  # score 0.9 would alert, the pole is noisy


def test_a_storm_is_logged_once_counted_and_its_incidents_suppressed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    intake = make_intake(store, storm_incidents=1, min_sensors=1)
    with caplog.at_level(logging.WARNING, logger="sed.fusion"):
        intake.handle(envelope(detection(1, sensor_id="pole-1"), sensor_id="pole-1"))
        (first,) = intake.poll(later_ns())
        intake.handle(envelope(detection(2, sensor_id="pole-2"), sensor_id="pole-2"))
        (second,) = intake.poll(later_ns())
    assert (first.priority, second.priority) == (wire.IncidentPriority.ALERT, wire.IncidentPriority.SUPPRESSED)
    storm_lines = [r.getMessage() for r in caplog.records if "storm" in r.getMessage()]
    assert storm_lines == [
        "scream storm: 2 incidents started within the window (fusion.policy.scream.storm_incidents = 1); "
        "new ones are suppressed"
    ]
    assert metric(intake, "sed_fusion_storms_total", label="scream") == 1
    assert metric(intake, "sed_fusion_storm_active", label="scream") == 1
    assert metric(intake, "sed_fusion_incidents_total", label="scream", priority="suppressed") == 1


def test_a_failing_policy_commits_the_incident_as_an_alert(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    intake = make_intake(store, confirm_score=1.0)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in the policy")

    monkeypatch.setattr(intake.policy, "decide", broken)
    monkeypatch.setattr(intake.policy, "note_detection", broken)
    intake.handle(envelope(detection(1)))
    assert intake.receiver.acks == [["pole-1:1"]]  # counted or not, the detection is stored and acked
    (committed,) = intake.poll(later_ns())
    assert committed.priority is wire.IncidentPriority.ALERT
    assert store.get_incident(committed.incident_id) is not None
    assert "false-alarm policy failed, kept as an alert: RuntimeError: a bug in the policy" in caplog.text


def test_a_noisy_flag_the_database_refuses_is_stored_at_a_later_turn(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = make_intake(store, sensor_max_per_hour=1)
    for n in range(2):
        intake.handle(envelope(detection(n)))
    real = store.set_noisy_labels
    calls: list[str] = []

    def down(sensor_id: str, labels: object) -> bool:
        calls.append(sensor_id)
        raise sa.exc.OperationalError("UPDATE sensors …", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "set_noisy_labels", down)
    now_ns = time.time_ns()
    intake.poll(now_ns)
    intake.poll(now_ns + 1)  # within the retry interval: not tried again
    assert calls == ["pole-1"]
    monkeypatch.setattr(store, "set_noisy_labels", real)
    intake.poll(now_ns + INCIDENT_RETRY_NS)
    assert store.list_sensors()[0].noisy_labels == (wire.Label.SCREAM,)
