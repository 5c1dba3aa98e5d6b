"""Detections → incidents: locate, merge rounds into one incident, late joiners, unlocated leftovers."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from sed import wire
from sed.config import FusionSection
from sed.errors import WireError
from sed.fusion import incidents as incidents_module
from sed.fusion.incidents import IncidentBuilder
from sed.units import speed_of_sound_m_per_s
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


def _lone(sensor_id: str, x_m: float, *, arrival_ns: int, n: int = 0) -> wire.Detection:
    return wire.Detection(
        detection_id=f"{sensor_id}:{n}",
        sensor_id=sensor_id,
        label=wire.Label.SCREAM,
        score=0.8,
        arrival_time_ns=arrival_ns,
        arrival_uncertainty_ns=200_000,
        duration_ms=50,
        peak_dbfs=-20,
        position=wire.Position(x_m=x_m, y_m=0.0),
        clock_status=wire.ClockStatus.SYNCED,
    )


def _hear_every_sensor(builder: IncidentBuilder, at_ns: int) -> None:
    """Heartbeats from the five poles of SENSORS (widest pair 250 m)."""
    for i, (x_m, y_m) in enumerate(SENSORS):
        builder.note_position(f"s{i}", (x_m, y_m, 0.0), heard_at_ns=at_ns)


def test_a_far_pole_heard_once_stops_delaying_lone_detections_when_its_position_ages_out() -> None:
    wait_ns = S
    normal_transit_ns = round(250.0 / speed_of_sound_m_per_s(15.0) * S)
    builder = IncidentBuilder(_config(position_max_age_s=600.0), temperature_c=15.0)  # no site cap: age-out alone
    _hear_every_sensor(builder, T0)
    _feed(builder, [_lone("far", 50_000.0, arrival_ns=T0)], T0)  # a map northing typed as metres
    builder.poll(T0 + 200 * S)  # it expires on its own (50 km of transit later)
    assert builder.transit_ns > 140 * S

    later_ns = T0 + 601 * S  # the far pole has not been heard for longer than position_max_age_s
    _hear_every_sensor(builder, later_ns)
    _feed(builder, [_lone("s0", 0.0, arrival_ns=later_ns)], later_ns)
    assert builder.poll(later_ns + wait_ns + normal_transit_ns - S // 20) == []
    (incident,) = builder.poll(later_ns + wait_ns + normal_transit_ns)
    assert incident.sensor_ids == ["s0"] and incident.position is None
    assert builder.transit_ns == normal_transit_ns


def test_the_wait_for_peers_never_exceeds_the_sounds_transit_across_the_site() -> None:
    cap_ns = round(2 * 1000.0 / speed_of_sound_m_per_s(15.0) * S)
    builder = IncidentBuilder(_config(), temperature_c=15.0, site_radius_m=1000.0)
    _feed(builder, [_lone("far", 50_000.0, arrival_ns=T0)], T0)
    _feed(builder, [_lone("s0", 0.0, arrival_ns=T0 + 2 * S)], T0 + 2 * S)  # right after: the far pole still counts
    assert builder.transit_ns == pytest.approx(cap_ns, abs=1)
    incidents = builder.poll(T0 + 2 * S + S + cap_ns)  # wait + capped transit, not 147 s
    assert sorted(sid for i in incidents for sid in i.sensor_ids) == ["far", "s0"]


def test_a_heartbeat_keeps_a_quiet_pole_counting_for_the_wait() -> None:
    builder = IncidentBuilder(_config(position_max_age_s=60.0), temperature_c=15.0)
    _hear_every_sensor(builder, T0)
    _hear_every_sensor(builder, T0 + 50 * S)
    builder.poll(T0 + 100 * S)  # 50 s after the last heartbeat: still recent
    assert builder.transit_ns == round(250.0 / speed_of_sound_m_per_s(15.0) * S)
    builder.poll(T0 + 111 * S)
    assert builder.transit_ns == 0


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("position.x_m", {"position": wire.Position(x_m=float("nan"), y_m=0.0)}),
        ("position.y_m", {"position": wire.Position(x_m=0.0, y_m=float("inf"))}),
        ("position.x_m", {"position": wire.Position(x_m=1e300, y_m=0.0)}),
        ("arrival_time_ns", {"arrival_time_ns": 2**63}),
        ("arrival_uncertainty_ns", {"arrival_uncertainty_ns": -1}),
    ],
)
def test_a_detection_association_cannot_hold_is_refused_naming_the_field_and_nothing_changes(
    field: str, changes: dict[str, object]
) -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    bad = msgspec.structs.replace(_lone("s0", 0.0, arrival_ns=T0), **changes)
    with pytest.raises(WireError, match=rf"detection 's0:0' from sensor 's0': {field} = "):
        builder.add(bad, received_at_ns=T0)
    assert builder.n_pending == 0 and builder.transit_ns == 0
    assert builder.poll(T0 + 3600 * S) == []


def test_a_detection_added_twice_is_queued_once() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    lone = _lone("s0", 0.0, arrival_ns=T0)
    _feed(builder, [lone, lone], T0)
    assert builder.n_pending == 1
    (incident,) = builder.poll(T0 + 2 * S)
    _feed(builder, [lone], T0 + 3 * S)  # already in an open incident
    assert builder.n_pending == 0 and incident.detection_ids == ["s0:0"]


def test_when_no_single_detection_explains_a_failing_poll_everything_pending_is_evicted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, [_lone("s0", 0.0, arrival_ns=T0), _lone("s1", 200.0, arrival_ns=T0)], T0)

    def fails_on_pairs(arrivals, **kwargs):
        if len(arrivals) > 1:
            raise FloatingPointError("only the pair fails")
        return [], list(arrivals)

    monkeypatch.setattr(incidents_module, "associate", fails_on_pairs)
    with pytest.raises(FloatingPointError):
        builder.poll(T0 + 2 * S)
    evicted = builder.evict_failing(T0 + 2 * S)
    assert sorted(d.detection_id for d, _ in evicted) == ["s0:0", "s1:0"]
    assert builder.n_pending == 0 and builder.poll(T0 + 3 * S) == []
