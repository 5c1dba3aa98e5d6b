"""Detections → incidents: provisional at once, located after the sound's neighbourhood wait, refined, merged."""

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
C = speed_of_sound_m_per_s(15.0)
#: Farthest pair of SENSORS, (0, 0)-(200, 150): the longest a sound takes between two of them.
WIDEST_NS = round(250.0 / C * S)
WAIT_NS = S  # _config()'s association wait
#: The pole whose farthest neighbour is nearest, (100, 180), to (200, 0): its detections are due first.
FIRST_DUE_NS = WAIT_NS + round(np.hypot(100.0, 180.0) / C * S)
Stage = wire.IncidentStage


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
    tag: str = "",
) -> list[wire.Detection]:
    times = scene_arrivals_ns(source, SENSORS, emission_ns=emission_ns)
    chosen = range(len(SENSORS)) if sensors is None else sensors
    return [
        wire.Detection(
            detection_id=f"s{i}:{times[i]}{tag}",
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


def _hear_every_sensor(builder: IncidentBuilder, at_ns: int) -> None:
    """Heartbeats from the five poles of SENSORS."""
    for i, (x_m, y_m) in enumerate(SENSORS):
        builder.note_position(f"s{i}", (x_m, y_m, 0.0), heard_at_ns=at_ns)


def _latest(updates: list[wire.Incident]) -> dict[str, wire.Incident]:
    latest: dict[str, wire.Incident] = {}
    for incident in updates:
        assert incident.revision > latest.get(incident.incident_id, incident).revision or (
            incident.incident_id not in latest
        )
        latest[incident.incident_id] = incident
    return latest


def test_a_sound_is_provisional_at_once_and_located_in_place_after_its_neighbourhood_wait() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _hear_every_sensor(builder, T0)  # heartbeats: every pole's neighbours are known
    _feed(builder, _detections((70.0, 40.0), emission_ns=T0), T0)
    (first,) = builder.poll(T0 + 1)  # shown at once, before any association
    assert first.stage is Stage.PROVISIONAL and first.position is None and len(first.sensor_ids) == 5
    assert builder.poll(T0 + FIRST_DUE_NS - S // 100) == []
    (located,) = builder.poll(T0 + FIRST_DUE_NS)  # every peer of that pole's detection is there by then
    assert located.incident_id == first.incident_id and located.revision == first.revision + 1
    assert located.stage is Stage.LOCATED and located.n_shots == 1 and len(located.detection_ids) == 5
    assert np.hypot(located.position.x_m - 70.0, located.position.y_m - 40.0) < 0.1
    assert abs(located.origin_time_ns - T0) < 50_000
    assert located.uncertainty_m is not None and located.uncertainty_m < 2.0


def test_each_pole_that_joins_a_provisional_incident_updates_it_in_place() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    heard = _detections((70.0, 40.0), emission_ns=T0)
    revisions = []
    for k, detection in enumerate(heard):
        _feed(builder, [detection], T0 + k * S // 10)
        (update,) = builder.poll(T0 + k * S // 10)
        revisions.append((update.incident_id, update.revision, len(update.sensor_ids), update.stage))
    assert [r[1:] for r in revisions] == [(k, k + 1, Stage.PROVISIONAL) for k in range(5)]
    assert len({r[0] for r in revisions}) == 1


def test_two_overlapping_sounds_155_ms_apart_become_two_located_incidents_and_no_ghost() -> None:
    builder = IncidentBuilder(_config(incident_merge_s=0.0), temperature_c=15.0)
    first = _detections((40.0, 30.0), emission_ns=T0)
    second = _detections((170.0, 120.0), emission_ns=T0 + 155_000_000)
    _feed(builder, sorted(first + second, key=lambda d: d.arrival_time_ns), T0)
    located = [i for i in _latest(builder.poll(T0 + 10 * S)).values() if i.stage is Stage.LOCATED]
    assert len(located) == 2
    found = sorted((round(i.position.x_m), round(i.position.y_m)) for i in located)
    assert found == [(40, 30), (170, 120)]
    assert {len(i.detection_ids) for i in located} == {5}


def test_rounds_seconds_apart_are_separate_shots_of_one_incident() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    updates = []
    for k in range(3):
        _feed(builder, _detections((120.0, 90.0), emission_ns=T0 + k * 3 * S), T0 + k * 3 * S)
        updates += builder.poll(T0 + k * 3 * S + 2 * S)
    latest = _latest(updates)
    shown = [i for i in latest.values() if i.stage is not Stage.MERGED]
    (incident,) = shown
    assert incident.n_shots == 3 and len(incident.detection_ids) == 15
    assert all(i.merged_into == incident.incident_id for i in latest.values() if i.stage is Stage.MERGED)


def test_different_classes_at_the_same_time_stay_apart() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((50.0, 50.0), emission_ns=T0), T0)
    _feed(builder, _detections((150.0, 100.0), emission_ns=T0 + S // 10, label="scream"), T0)
    latest = _latest(builder.poll(T0 + 3 * S))
    assert sorted((str(i.label), i.stage) for i in latest.values()) == [
        ("gunshot", Stage.LOCATED),
        ("scream", Stage.LOCATED),
    ]


def test_a_late_detection_joins_the_shot_it_fits_once_its_wait_is_over_and_one_that_does_not_fit_stays_apart() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _hear_every_sensor(builder, T0)
    all_five = _detections((60.0, 100.0), emission_ns=T0)
    _feed(builder, all_five[:4], T0)
    located = _latest(builder.poll(T0 + 3 * S))
    (first,) = located.values()
    assert first.stage is Stage.LOCATED and len(first.sensor_ids) == 4
    late_ns = T0 + 3 * S + 1
    _feed(builder, all_five[4:], late_ns)
    (shown,) = builder.poll(late_ns)  # shown at once, on its own, while it may still be a new sound
    assert shown.stage is Stage.PROVISIONAL and shown.incident_id != first.incident_id
    after_wait = _latest(builder.poll(late_ns + WAIT_NS + WIDEST_NS))
    assert after_wait[shown.incident_id].stage is Stage.MERGED
    assert after_wait[shown.incident_id].merged_into == first.incident_id
    joined = after_wait[first.incident_id]
    assert len(joined.detection_ids) == 5 and joined.position is not None
    other_sound = _detections((150.0, 20.0), emission_ns=T0 + S // 3, sensors=[2], tag="x")
    _feed(builder, other_sound, late_ns + 10 * S)
    final = _latest(builder.poll(late_ns + 20 * S))
    (lone,) = final.values()
    assert lone.stage is Stage.UNLOCATED and lone.sensor_ids == ["s2"]


def test_too_few_sensors_or_unsynced_clocks_end_unlocated_after_the_wait() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(builder, _detections((60.0, 100.0), emission_ns=T0, sensors=[0, 1], label="scream"), T0)
    _feed(builder, _detections((160.0, 20.0), emission_ns=T0, clock=wire.ClockStatus.UNSYNCED), T0)
    provisional = builder.poll(T0 + 1)
    assert all(i.stage is Stage.PROVISIONAL for i in provisional)
    final = _latest(builder.poll(T0 + 5 * S))
    assert all(i.stage is Stage.UNLOCATED and i.position is None for i in final.values())
    scream = [i for i in final.values() if i.label is wire.Label.SCREAM]
    assert [len(i.sensor_ids) for i in scream] == [2]  # the two scream poles heard one sound


def test_three_poles_are_located_only_when_no_nearer_pole_stayed_silent() -> None:
    lonely = IncidentBuilder(_config(), temperature_c=15.0)  # only these three poles exist
    _feed(lonely, _detections((90.0, 60.0), emission_ns=T0, sensors=[0, 1, 2]), T0)
    (alone,) = _latest(lonely.poll(T0 + 3 * S)).values()
    assert alone.stage is Stage.LOCATED and len(alone.sensor_ids) == 3

    crowded = IncidentBuilder(_config(), temperature_c=15.0)
    _hear_every_sensor(crowded, T0)  # s3 and s4 are live, nearer to the point than s2, and heard nothing
    _feed(crowded, _detections((90.0, 60.0), emission_ns=T0, sensors=[0, 1, 2]), T0)
    (ghost,) = _latest(crowded.poll(T0 + 3 * S)).values()
    assert ghost.stage is Stage.UNLOCATED and ghost.position is None


def test_a_detection_waits_for_its_neighbourhood_not_for_a_pole_beyond_hearing_range() -> None:
    builder = IncidentBuilder(_config(hearing_range_m=400.0), temperature_c=15.0)
    _hear_every_sensor(builder, T0)
    builder.note_position("far", (50_000.0, 0.0, 0.0), heard_at_ns=T0)  # a pole 50 km away
    lone = _detections((60.0, 100.0), emission_ns=T0, sensors=[0], label="scream")
    _feed(builder, lone, T0)
    builder.poll(T0)
    assert builder.poll(T0 + WAIT_NS + WIDEST_NS - S // 100) == []
    (incident,) = builder.poll(T0 + WAIT_NS + WIDEST_NS)
    assert incident.stage is Stage.UNLOCATED and incident.sensor_ids == ["s0"]


def test_a_pole_that_falls_silent_stops_delaying_its_neighbours_once_its_position_ages_out() -> None:
    builder = IncidentBuilder(_config(position_max_age_s=60.0, hearing_range_m=5000.0), temperature_c=15.0)
    _hear_every_sensor(builder, T0)
    builder.note_position("edge", (9_000.0, 0.0, 0.0), heard_at_ns=T0)  # heard once, then never again
    assert builder.transit_ns == round(np.hypot(9_000.0, 150.0) / C * S)  # to (0, 150)
    later_ns = T0 + 61 * S
    _hear_every_sensor(builder, later_ns)
    builder.poll(later_ns)
    assert builder.transit_ns == WIDEST_NS


def test_the_wait_for_peers_never_exceeds_the_sounds_transit_across_the_site() -> None:
    cap_ns = round(2 * 1000.0 / C * S)
    builder = IncidentBuilder(_config(hearing_range_m=10_000.0), temperature_c=15.0, site_radius_m=1000.0)
    builder.note_position("far", (9_000.0, 0.0, 0.0), heard_at_ns=T0)
    _feed(builder, _detections((60.0, 100.0), emission_ns=T0, sensors=[0], label="scream"), T0)
    assert builder.transit_ns == cap_ns
    builder.poll(T0)
    (incident,) = builder.poll(T0 + WAIT_NS + cap_ns)  # wait + capped transit, not 26 s
    assert incident.stage is Stage.UNLOCATED


@pytest.mark.parametrize("timing_noise_s", [0.0005, 0.001])
def test_timing_noise_stays_within_the_reported_uncertainty(timing_noise_s: float, rng: np.random.Generator) -> None:
    inside = 0
    for trial in range(40):
        builder = IncidentBuilder(_config(max_timing_error_ms=10.0), temperature_c=15.0)
        detections = []
        for d in _detections((90.0, 70.0), emission_ns=T0 + trial * 100 * S):
            jitter = round(rng.normal(0, timing_noise_s) * 1e9)
            detections.append(
                msgspec.structs.replace(
                    d, arrival_time_ns=d.arrival_time_ns + jitter, arrival_uncertainty_ns=round(timing_noise_s * 1e9)
                )
            )
        _feed(builder, detections, T0)
        (incident,) = _latest(builder.poll(T0 + 3 * S)).values()
        error = np.hypot(incident.position.x_m - 90.0, incident.position.y_m - 70.0)
        inside += error <= incident.uncertainty_m
    assert inside >= 34  # ~95 % circle; 34/40 leaves room for sampling noise


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("position.x_m", {"position": wire.Position(x_m=float("nan"), y_m=0.0)}),
        ("position.y_m", {"position": wire.Position(x_m=0.0, y_m=float("inf"))}),
        ("position.x_m", {"position": wire.Position(x_m=1e300, y_m=0.0)}),
        ("arrival_time_ns", {"arrival_time_ns": 2**63}),
        ("arrival_uncertainty_ns", {"arrival_uncertainty_ns": -1}),
        ("directness", {"directness": float("nan")}),
    ],
)
def test_a_detection_association_cannot_hold_is_refused_naming_the_field_and_nothing_changes(
    field: str, changes: dict[str, object]
) -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    (good,) = _detections((0.0, 0.0), emission_ns=T0, sensors=[0])
    bad = msgspec.structs.replace(good, **changes)
    with pytest.raises(WireError, match=rf"detection '{good.detection_id}' from sensor 's0': {field} = "):
        builder.add(bad, received_at_ns=T0)
    assert builder.n_pending == 0 and builder.transit_ns == 0
    assert builder.poll(T0 + 3600 * S) == []


def test_a_detection_added_twice_is_held_once() -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    lone = _detections((0.0, 0.0), emission_ns=T0, sensors=[0])
    _feed(builder, lone + lone, T0)
    assert builder.n_pending == 1
    (incident,) = _latest(builder.poll(T0 + 3 * S)).values()
    _feed(builder, lone, T0 + 3 * S)  # already in an open incident
    assert builder.n_pending == 0 and incident.detection_ids == [lone[0].detection_id]
    assert builder.holds(lone[0].detection_id)


def test_a_detection_that_breaks_association_is_set_aside_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builder = IncidentBuilder(_config(), temperature_c=15.0)
    heard = _detections((70.0, 40.0), emission_ns=T0)
    poison = heard[0].detection_id
    real = incidents_module.associate_seed

    def fails_for_one(seed, candidates, **kwargs):
        if seed.detection_id == poison:
            raise FloatingPointError("this one breaks")
        return real(seed, [c for c in candidates if c.detection_id != poison], **kwargs)

    monkeypatch.setattr(incidents_module, "associate_seed", fails_for_one)
    _feed(builder, heard, T0)
    latest = _latest(builder.poll(T0 + 3 * S))
    ((failed, received_ns),) = builder.take_failed()
    assert failed.detection_id == poison and received_ns == T0
    (incident,) = [i for i in latest.values() if i.stage is Stage.LOCATED]
    assert poison not in incident.detection_ids and len(incident.detection_ids) == 4


def test_a_restored_provisional_incident_is_located_under_its_own_id() -> None:
    heard = _detections((70.0, 40.0), emission_ns=T0)
    before = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(before, heard, T0)
    (provisional,) = before.poll(T0)

    after = IncidentBuilder(_config(), temperature_c=15.0)  # the node restarted
    after.restore(provisional, heard, now_ns=T0 + 10 * S)
    assert after.n_pending == 5 and all(after.holds(d.detection_id) for d in heard)
    (located,) = _latest(after.poll(T0 + 15 * S)).values()
    assert located.incident_id == provisional.incident_id and located.stage is Stage.LOCATED
    assert located.revision > provisional.revision


def test_a_late_detection_joins_a_located_incident_restored_after_a_restart() -> None:
    heard = _detections((60.0, 100.0), emission_ns=T0)
    before = IncidentBuilder(_config(), temperature_c=15.0)
    _feed(before, heard[:4], T0)
    (located,) = _latest(before.poll(T0 + 3 * S)).values()

    after = IncidentBuilder(_config(), temperature_c=15.0)
    after.restore(located, heard[:4], now_ns=T0 + 4 * S)
    _feed(after, heard[4:], T0 + 4 * S)
    joined = _latest(after.poll(T0 + 10 * S))[located.incident_id]
    assert len(joined.sensor_ids) == 5 and joined.stage is Stage.LOCATED


def test_an_incident_of_several_rounds_is_taken_back_holding_its_detections_without_a_mixed_fix() -> None:
    rounds = [_detections((120.0, 90.0), emission_ns=T0 + k * 3 * S, tag=f"r{k}") for k in range(2)]
    before = IncidentBuilder(_config(), temperature_c=15.0)
    updates = []
    for k, heard in enumerate(rounds):
        _feed(before, heard[:4], T0 + k * 3 * S)
        updates += before.poll(T0 + k * 3 * S + 2 * S)
    (incident,) = [i for i in _latest(updates).values() if i.stage is Stage.LOCATED]
    assert incident.n_shots == 2

    after = IncidentBuilder(_config(), temperature_c=15.0)
    after.restore(incident, rounds[0][:4] + rounds[1][:4], now_ns=T0 + 7 * S)
    assert all(after.holds(d.detection_id) for heard in rounds for d in heard[:4])
    late = rounds[1][4:]  # the second round's fifth pole: no solution of both rounds mixed to join
    _feed(after, late, T0 + 7 * S)
    final = _latest(after.poll(T0 + 20 * S))
    assert [i.stage for i in final.values()] == [Stage.UNLOCATED]
