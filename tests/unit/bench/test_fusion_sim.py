"""The load benchmark's simulated city: physics of arrivals, who hears what, spurious share, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sed import wire
from sed.bench.fusion_sim import (
    DETECTOR_DELAY_S,
    LABEL_MIX,
    PICK_SIGMA_S,
    START_NS,
    grid_positions,
    scenario_of,
    simulate,
)
from sed.errors import SedError
from sed.units import NS_PER_S, speed_of_sound_m_per_s


@pytest.fixture(scope="module")
def city():
    return simulate(n_poles=200, sources_per_min=300, duration_s=20, seed=3)


def test_grid_is_square_spaced_and_centred_on_the_site_origin() -> None:
    positions = grid_positions(200, spacing_m=250.0)
    assert positions.shape == (200, 3) and np.all(positions[:, 2] == 4.0)
    low, high = positions[:, :2].min(axis=0), positions[:, :2].max(axis=0)
    np.testing.assert_allclose(low + high, 0.0)
    xs = np.unique(positions[:, 0])
    np.testing.assert_allclose(np.diff(xs), 250.0)
    assert len(xs) == math.ceil(math.sqrt(200))


def test_arrival_times_are_travel_time_at_the_speed_of_sound_plus_pick_noise(city) -> None:
    c = speed_of_sound_m_per_s(city.temperature_c)
    residuals_s = []
    for h in city.heard:
        s = city.source_of[h.detection.detection_id]
        if s is None:
            continue
        source = city.sources[s]
        distance_m = math.dist(source.position_m, city.poles[h.detection.sensor_id])
        expected_ns = source.emission_ns + distance_m / c * NS_PER_S
        residuals_s.append((h.detection.arrival_time_ns - expected_ns) / NS_PER_S)
    residuals_s = np.array(residuals_s)
    assert len(residuals_s) > 500
    assert abs(residuals_s.mean()) < 0.2e-3
    assert 0.8 * PICK_SIGMA_S < residuals_s.std() < 1.2 * PICK_SIGMA_S
    assert np.max(np.abs(residuals_s)) < 6 * PICK_SIGMA_S


def test_each_detection_reaches_the_node_the_detector_delay_after_the_sound_reached_its_pole(city) -> None:
    c = speed_of_sound_m_per_s(city.temperature_c)
    for h in city.heard:
        s = city.source_of[h.detection.detection_id]
        if s is None:
            delay_s = (h.received_at_ns - h.detection.arrival_time_ns) / NS_PER_S
        else:
            source = city.sources[s]
            reached_ns = source.emission_ns + math.dist(source.position_m, city.poles[h.detection.sensor_id]) / c * 1e9
            delay_s = (h.received_at_ns - reached_ns) / NS_PER_S
        assert DETECTOR_DELAY_S[0] - 1e-6 <= delay_s <= DETECTOR_DELAY_S[1] + 1e-6
    received = [h.received_at_ns for h in city.heard]
    assert received == sorted(received)


def test_every_pole_within_the_hearing_radius_hears_each_source_and_no_other(city) -> None:
    for source in city.sources:
        within = {
            pole
            for pole, (x, y, _) in city.poles.items()
            if math.hypot(x - source.position_m[0], y - source.position_m[1]) <= 400.0
        }
        assert set(source.heard_by) == within
        detections = city.detections_of(source.source_id)
        assert sorted(h.detection.sensor_id for h in detections) == sorted(within)
        assert all(h.detection.label is source.label for h in detections)
    # Sources fall inside the grid's area.
    xy = np.array([s.position_m[:2] for s in city.sources])
    grid = np.array(list(city.poles.values()))[:, :2]
    assert np.all(xy >= grid.min(axis=0)) and np.all(xy <= grid.max(axis=0))


def test_spurious_detections_are_the_configured_fraction_of_the_real_ones(city) -> None:
    n_spurious = sum(v is None for v in city.source_of.values())
    n_real = len(city.heard) - n_spurious
    assert n_spurious == round(0.1 * n_real)
    none = simulate(n_poles=50, sources_per_min=60, duration_s=20, seed=3, spurious_fraction=0.0)
    assert all(v is not None for v in none.source_of.values())


def test_detections_are_valid_wire_messages_with_the_truth_kept_outside(city) -> None:
    for h in city.heard[:200]:
        detection = h.detection
        assert wire.decode(wire.encode(detection)) == detection
        assert detection.clock_status is wire.ClockStatus.SYNCED
        assert detection.arrival_uncertainty_ns == round(PICK_SIGMA_S * NS_PER_S)
        assert detection.detection_id.startswith(detection.sensor_id + ":")
        p = city.poles[detection.sensor_id]
        assert (detection.position.x_m, detection.position.y_m, detection.position.z_m) == p
    assert len({h.detection.detection_id for h in city.heard}) == len(city.heard) == len(city.source_of)
    assert all(s.emission_ns >= START_NS for s in city.sources)


def test_source_rate_and_class_mix_follow_the_settings() -> None:
    big = simulate(n_poles=50, sources_per_min=600, duration_s=120, seed=5, spurious_fraction=0.0)
    assert 1100 <= len(big.sources) <= 1300  # Poisson with mean 1,200
    shares = {label: sum(s.label is label for s in big.sources) / len(big.sources) for label in LABEL_MIX}
    for label, share in LABEL_MIX.items():
        assert abs(shares[label] - share) < 0.05


def test_the_same_seed_gives_the_same_city_and_another_seed_another() -> None:
    a = simulate(n_poles=50, sources_per_min=60, duration_s=10, seed=7)
    b = simulate(n_poles=50, sources_per_min=60, duration_s=10, seed=7)
    c = simulate(n_poles=50, sources_per_min=60, duration_s=10, seed=8)
    assert a.heard == b.heard and a.sources == b.sources and a.source_of == b.source_of
    assert a.heard != c.heard


def test_placed_sources_are_heard_as_placed_within_the_hearing_radius() -> None:
    placed = [(wire.Label.SCREAM, (0.0, 0.0), 1.0)]
    poles = grid_positions(9, spacing_m=250.0)  # 3 x 3: the corners are 354 m from the centre
    for radius_m, n_heard in ((400.0, 9), (300.0, 5)):
        scenario = scenario_of(
            poles, placed, duration_s=5.0, rng=np.random.default_rng(0), hearing_radius_m=radius_m, spurious_fraction=0
        )
        (source,) = scenario.sources
        assert source.label is wire.Label.SCREAM and source.emission_ns == START_NS + NS_PER_S
        assert len(source.heard_by) == len(scenario.heard) == n_heard


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_poles", 0), ("sources_per_min", -1.0), ("duration_s", 0.0), ("spurious_fraction", math.nan)],
)
def test_out_of_range_settings_are_refused_naming_the_argument(field: str, value: float) -> None:
    settings = {"n_poles": 4, "sources_per_min": 1.0, "duration_s": 1.0, "seed": 0, field: value}
    with pytest.raises(SedError, match=field):
        simulate(**settings)
