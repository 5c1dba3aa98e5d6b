"""Detections → incidents: locate, merge rounds into one incident, late joiners, unlocated leftovers."""

from __future__ import annotations

import numpy as np
import pytest

from sed import wire
from sed.config import FusionSection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.locate import speed_of_sound_m_per_s
from tests.conftest import scene_arrivals_ns

SENSORS = [(0.0, 0.0), (200.0, 0.0), (200.0, 150.0), (0.0, 150.0), (100.0, 180.0)]
T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def _config(**changes: object) -> FusionSection:
    values = {"secret_key_file": "x", "authorized_keys_dir": "y", "association_wait_s": 1.0} | changes
    return FusionSection.model_validate(values)


def _detections(
    source: tuple[float, float],
    *,
    emission_ns: int,
    label: str = "gunshot",
    sensors: list[int] | None = None,
    clock: wire.ClockStatus = wire.ClockStatus.SYNCED,
) -> list[wire.Detection]:
    times = scene_arrivals_ns(source, SENSORS, emission_ns=emission_ns)
    chosen = range(len(SENSORS)) if sensors is None else sensors
    return [
        wire.Detection(
            detection_id=f"s{i}:{times[i]}",
            sensor_id=f"s{i}",
            label=wire.Label(label),
            score=0.9,
            arrival_time_ns=times[i],
            arrival_uncertainty_ns=200_000,
            duration_ms=50,
            peak_dbfs=-20,
            position=wire.Position(x_m=SENSORS[i][0], y_m=SENSORS[i][1], z_m=0.0),
            clock_status=clock,
        )
        for i in chosen
    ]


def _feed(builder: IncidentBuilder, detections: list[wire.Detection], received_ns: int) -> None:
    for detection in detections:
        builder.add(detection, received_at_ns=received_ns)


def test_one_sound_heard_by_five_sensors_becomes_one_located_incident() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((70.0, 40.0), emission_ns=T0), T0)
    (incident,) = builder.poll(T0 + 1)  # more sensors than a fix needs: no need to wait
    assert incident.label is wire.Label.GUNSHOT
    assert np.hypot(incident.position.x_m - 70.0, incident.position.y_m - 40.0) < 0.1
    assert abs(incident.origin_time_ns - T0) < 50_000
    assert len(incident.detection_ids) == 5 and incident.n_shots == 1
    assert incident.uncertainty_m is not None and incident.uncertainty_m < 2.0


def test_a_bare_minimum_of_sensors_waits_for_late_peers() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((70.0, 40.0), emission_ns=T0, sensors=[0, 1, 2]), T0)
    assert builder.poll(T0 + S // 2) == []
    _feed(builder, _detections((70.0, 40.0), emission_ns=T0, sensors=[3]), T0 + S // 2)
    (incident,) = builder.poll(T0 + S // 2 + 1)
    assert len(incident.sensor_ids) == 4


def test_rounds_seconds_apart_are_separate_shots_of_one_incident() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    ids = set()
    for k in range(3):
        _feed(builder, _detections((120.0, 90.0), emission_ns=T0 + k * 2 * S), T0 + k * 2 * S)
        for incident in builder.poll(T0 + k * 2 * S + S):
            ids.add(incident.incident_id)
            last = incident
    assert len(ids) == 1
    assert last.n_shots == 3 and len(last.detection_ids) == 15


def test_different_classes_at_the_same_time_stay_apart() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((50.0, 50.0), emission_ns=T0), T0)
    _feed(builder, _detections((150.0, 100.0), emission_ns=T0 + S // 10, label="scream"), T0)
    incidents = builder.poll(T0 + S)
    assert sorted(i.label for i in incidents) == ["gunshot", "scream"]


def test_a_late_detection_joins_the_shot_it_fits_without_waiting() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    all_five = _detections((60.0, 100.0), emission_ns=T0)
    _feed(builder, all_five[:4], T0)
    (first,) = builder.poll(T0 + S)
    _feed(builder, all_five[4:], T0 + S + 1)
    (updated,) = builder.poll(T0 + S + 2)  # the located shot predicts its arrival: no association wait
    assert updated.incident_id == first.incident_id
    assert len(updated.detection_ids) == 5
    other_sound = _detections((150.0, 20.0), emission_ns=T0 + S // 3, sensors=[2])
    _feed(builder, other_sound, T0 + S + 3)
    assert builder.poll(T0 + S + 4) == []  # does not fit the shot: waits for peers as usual


def test_too_few_sensors_or_unsynced_clocks_give_an_incident_without_a_point() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((60.0, 100.0), emission_ns=T0, sensors=[0, 1], label="scream"), T0)
    _feed(builder, _detections((160.0, 20.0), emission_ns=T0, clock=wire.ClockStatus.UNSYNCED), T0)
    assert builder.poll(T0 + S) == []
    incidents = builder.poll(T0 + 5 * S)
    assert sorted((i.label, len(i.sensor_ids)) for i in incidents) == [("gunshot", 5), ("scream", 2)]
    assert all(i.position is None and i.uncertainty_m is None for i in incidents)


def test_a_peer_within_wait_plus_transit_still_joins_and_leftovers_expire_right_after() -> None:
    wait_ns = S  # _config()'s association wait
    transit_ns = round(250.0 / speed_of_sound_m_per_s(15.0) * S)  # widest pair of SENSORS: (0, 0)-(200, 150)
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    heard = _detections((60.0, 40.0), emission_ns=T0, sensors=[0, 1, 2])
    _feed(builder, heard[:2], T0)
    assert builder.poll(T0 + wait_ns) == []  # waited, but two sensors locate nothing yet
    late_ns = T0 + wait_ns + transit_ns - S // 20  # the third just inside wait + transit
    _feed(builder, heard[2:], late_ns)
    (incident,) = builder.poll(late_ns)
    assert incident.position is not None and len(incident.sensor_ids) == 3

    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((70.0, 40.0), emission_ns=T0), T0)  # every sensor known: sets the transit
    builder.poll(T0 + 1)
    scream_ns = T0 + 20 * S
    _feed(builder, _detections((60.0, 100.0), emission_ns=scream_ns, sensors=[0, 1], label="scream"), scream_ns)
    assert builder.poll(scream_ns + wait_ns + transit_ns - S // 20) == []
    (scream,) = builder.poll(scream_ns + wait_ns + transit_ns)
    assert scream.position is None and len(scream.sensor_ids) == 2


@pytest.mark.parametrize("timing_noise_s", [0.0005, 0.001])
def test_timing_noise_stays_within_the_reported_uncertainty(timing_noise_s: float, rng: np.random.Generator) -> None:
    inside = 0
    for trial in range(40):
        builder = IncidentBuilder(_config(max_timing_error_ms=10.0), temperature_c=15.0)
        detections = []
        for d in _detections((90.0, 70.0), emission_ns=T0 + trial * 100 * S):
            jitter = round(rng.normal(0, timing_noise_s) * 1e9)
            detections.append(
                wire.Detection(
                    **{
                        f: getattr(d, f)
                        for f in d.__struct_fields__
                        if f not in {"arrival_time_ns", "arrival_uncertainty_ns"}
                    },
                    arrival_time_ns=d.arrival_time_ns + jitter,
                    arrival_uncertainty_ns=round(timing_noise_s * 1e9),
                )
            )
        _feed(builder, detections, T0)
        (incident,) = builder.poll(T0 + S)
        error = np.hypot(incident.position.x_m - 90.0, incident.position.y_m - 70.0)
        inside += error <= incident.uncertainty_m
    assert inside >= 34  # ~95 % circle; 34/40 leaves room for sampling noise
