"""TDOA solver on synthetic arrivals with exact ground truth."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from sed.errors import GeometryError
from sed.fusion.locate import (
    CHI2_2DOF_95,
    Arrival,
    SolveStatus,
    error_ellipse,
    locate,
)
from sed.units import speed_of_sound_m_per_s

TEMPERATURE_C = 5.0
EMISSION_NS = 1_700_000_000_000_000_000
#: A site frame far from the origin, as real projected coordinates are.
OFFSET_M = np.array([-11_000.0, 3_500.0, -100.0])


def arrivals_from(
    source_m: np.ndarray,
    sensors_m: np.ndarray,
    *,
    noise_s: float = 0.0,
    rng: np.random.Generator | None = None,
    planar: bool = True,
    uncertainty_ns: int = 1_000_000,
) -> list[Arrival]:
    """Arrivals of a sound emitted at ``EMISSION_NS`` from ``source_m`` (horizontal or 3-D paths)."""
    c = speed_of_sound_m_per_s(TEMPERATURE_C)
    delta = sensors_m - source_m
    distance_m = np.hypot(delta[:, 0], delta[:, 1]) if planar else np.linalg.norm(delta, axis=1)
    jitter_s = rng.normal(0.0, noise_s, len(sensors_m)) if noise_s else np.zeros(len(sensors_m))
    return [
        Arrival(
            sensor_id=f"s{i}",
            position_m=tuple(float(v) for v in sensor),
            arrival_time_ns=EMISSION_NS + round((d / c + j) * 1e9),
            uncertainty_ns=uncertainty_ns,
        )
        for i, (sensor, d, j) in enumerate(zip(sensors_m, distance_m, jitter_s, strict=True))
    ]


def ring_of_sensors(
    rng: np.random.Generator, n: int, radius_m: float = 500.0, height_span_m: float = 30.0
) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.4, 1.0, n) * radius_m
    xyz = np.column_stack([radii * np.cos(angles), radii * np.sin(angles), rng.uniform(0, height_span_m, n)])
    return xyz + OFFSET_M


def horizontal_error_m(solution_xy: tuple[float, ...], source_m: np.ndarray) -> float:
    return math.hypot(solution_xy[0] - source_m[0], solution_xy[1] - source_m[1])


def test_exact_arrivals_give_the_source_within_a_decimetre(rng: np.random.Generator) -> None:
    for _ in range(20):
        sensors = ring_of_sensors(rng, int(rng.integers(4, 12)))
        source = OFFSET_M + np.array([*rng.uniform(-300, 300, 2), 0.0])
        solution = locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C)
        assert solution.status is SolveStatus.LOCATED
        assert solution.position_m is not None and solution.origin_time_ns is not None
        assert horizontal_error_m(solution.position_m, source) < 0.1
        assert abs(solution.origin_time_ns - EMISSION_NS) < 1_000  # 1 us
        assert np.abs(solution.residuals_m).max() < 0.01


def test_given_source_height_uses_3d_distances(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 7, height_span_m=80.0)
    source = OFFSET_M + np.array([40.0, -60.0, 35.0])
    arrivals = arrivals_from(source, sensors, planar=False)
    solution = locate(arrivals, temperature_c=TEMPERATURE_C, source_z_m=float(source[2]))
    assert solution.status is SolveStatus.LOCATED and solution.position_m is not None
    assert solution.dimensions == "2.5d"
    assert horizontal_error_m(solution.position_m, source) < 0.1
    solved = locate(arrivals, temperature_c=TEMPERATURE_C, solve_z=True)
    assert solved.dimensions == "3d" and solved.position_m is not None
    assert horizontal_error_m(solved.position_m, source) < 0.1
    assert abs(solved.position_m[2] - source[2]) < 0.5


def test_one_millisecond_timing_noise_matches_the_reported_covariance(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 6)
    squared_mahalanobis, inside_radius = [], []
    for _ in range(300):
        source = OFFSET_M + np.array([*rng.uniform(-250, 250, 2), 0.0])
        arrivals = arrivals_from(source, sensors, noise_s=1e-3, rng=rng, uncertainty_ns=1_000_000)
        solution = locate(arrivals, temperature_c=TEMPERATURE_C)
        assert solution.status is SolveStatus.LOCATED
        assert solution.position_m is not None and solution.covariance_m2 is not None
        error = np.array(solution.position_m[:2]) - source[:2]
        squared_mahalanobis.append(float(error @ np.linalg.solve(solution.covariance_m2, error)))
        inside_radius.append(np.hypot(*error) <= solution.uncertainty_m)
    d2 = np.array(squared_mahalanobis)
    # chi-square with 2 dof: mean 2, 95 % below 5.99 (the covariance is only ever inflated).
    assert 1.4 < d2.mean() < 2.4
    assert 0.92 <= np.mean(d2 <= CHI2_2DOF_95) <= 0.99
    assert np.mean(inside_radius) >= 0.95


def test_outlier_arrival_is_down_weighted(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 9)
    source = OFFSET_M + np.array([30.0, 20.0, 0.0])
    arrivals = arrivals_from(source, sensors, noise_s=2e-4, rng=rng, uncertainty_ns=300_000)
    late = arrivals[3]
    arrivals[3] = Arrival(
        sensor_id=late.sensor_id, position_m=late.position_m, arrival_time_ns=late.arrival_time_ns + 40_000_000,
        uncertainty_ns=late.uncertainty_ns,
    )  # fmt: skip
    robust = locate(arrivals, temperature_c=TEMPERATURE_C)
    plain = locate(arrivals, temperature_c=TEMPERATURE_C, robust=False)
    assert robust.position_m is not None and plain.position_m is not None
    assert horizontal_error_m(robust.position_m, source) < 1.0
    assert horizontal_error_m(robust.position_m, source) < horizontal_error_m(plain.position_m, source)
    assert abs(robust.residuals_m[3]) > 10.0  # the outlier stands out instead of being smeared


def test_closed_form_mlg_agrees_on_exact_data(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 8)
    source = OFFSET_M + np.array([-80.0, 120.0, 0.0])
    solution = locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C, method="mlg")
    assert solution.status is SolveStatus.LOCATED and solution.position_m is not None
    assert horizontal_error_m(solution.position_m, source) < 0.1
    with pytest.raises(GeometryError):
        locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C, method="newton")


def test_fewer_than_three_sensors_report_too_few_and_the_nearest_sensor(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 2)
    source = sensors[1] + np.array([5.0, 5.0, 0.0])
    solution = locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C)
    assert solution.status is SolveStatus.TOO_FEW
    assert solution.position_m is None and solution.covariance_m2 is None and solution.uncertainty_m is None
    assert solution.nearest_sensor_id == "s1"
    assert locate([], temperature_c=TEMPERATURE_C).status is SolveStatus.TOO_FEW


def test_sensors_on_a_line_are_degenerate() -> None:
    sensors = np.column_stack([np.linspace(-600, 600, 6), np.full(6, 20.0), np.zeros(6)]) + OFFSET_M
    source = OFFSET_M + np.array([100.0, 150.0, 0.0])
    solution = locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C)
    assert solution.status is SolveStatus.DEGENERATE
    assert solution.position_m is None


def test_three_sensors_with_two_exact_solutions_are_ambiguous() -> None:
    sensors = np.array([[0.0, 0.0, 0.0], [400.0, 0.0, 0.0], [0.0, 400.0, 0.0]]) + OFFSET_M
    source = OFFSET_M + np.array([-300.0, -50.0, 0.0])
    solution = locate(arrivals_from(source, sensors), temperature_c=TEMPERATURE_C)
    assert solution.status is SolveStatus.AMBIGUOUS
    assert solution.position_m is None
    assert len(solution.candidates_m) == 2
    assert min(horizontal_error_m(c, source) for c in solution.candidates_m) < 0.1
    inside = OFFSET_M + np.array([600.0, 600.0, 0.0])  # here only one root emits before the first arrival
    unique = locate(arrivals_from(inside, sensors), temperature_c=TEMPERATURE_C)
    assert unique.status is SolveStatus.LOCATED and unique.position_m is not None
    assert horizontal_error_m(unique.position_m, inside) < 0.1


def test_two_arrivals_from_one_sensor_are_refused(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 4)
    arrivals = arrivals_from(OFFSET_M, sensors)
    with pytest.raises(GeometryError, match="s0"):
        locate([*arrivals, arrivals[0]], temperature_c=TEMPERATURE_C)


def test_error_ellipse_axes_follow_the_covariance() -> None:
    major, minor, angle_deg = error_ellipse(np.array([[4.0, 0.0], [0.0, 1.0]]), probability=0.95)
    assert major == pytest.approx(2.0 * math.sqrt(CHI2_2DOF_95))
    assert minor == pytest.approx(math.sqrt(CHI2_2DOF_95))
    assert abs(math.sin(math.radians(angle_deg))) < 1e-9


def test_speed_of_sound_rises_with_temperature() -> None:
    assert speed_of_sound_m_per_s(0.0) == pytest.approx(331.3)
    assert speed_of_sound_m_per_s(20.0) == pytest.approx(343.2, abs=0.1)


def test_solve_takes_under_five_milliseconds(rng: np.random.Generator) -> None:
    sensors = ring_of_sensors(rng, 15)
    source = OFFSET_M + np.array([10.0, -20.0, 0.0])
    arrivals = arrivals_from(source, sensors, noise_s=2e-3, rng=rng)
    durations_s = []
    for _ in range(30):
        # CPU time of this thread: other jobs on the machine and other tests' threads don't count.
        started = time.thread_time()
        locate(arrivals, temperature_c=TEMPERATURE_C)
        durations_s.append(time.thread_time() - started)
    assert np.median(durations_s) < 5e-3


def test_wind_carried_wavefront_is_undone_when_the_wind_is_given(rng: np.random.Generator) -> None:
    c = speed_of_sound_m_per_s(TEMPERATURE_C)
    wind = np.array([4.0, -3.0])  # blows towards east-south-east, 5 m/s
    sensors = ring_of_sensors(rng, 8, radius_m=800.0)
    source = OFFSET_M + np.array([40.0, 25.0, 0.0])
    arrivals = []
    for i, sensor in enumerate(sensors):
        # Exact moving-medium travel time: |s - p - w T| = c T.
        d = sensor[:2] - source[:2]
        a, b, q = c**2 - wind @ wind, d @ wind, d @ d
        travel_s = (-b + math.sqrt(b * b + a * q)) / a
        arrivals.append(
            Arrival(sensor_id=f"s{i}", position_m=tuple(float(v) for v in sensor),
                    arrival_time_ns=EMISSION_NS + round(travel_s * 1e9), uncertainty_ns=1_000_000)
        )  # fmt: skip
    still = locate(arrivals, temperature_c=TEMPERATURE_C)
    windy = locate(arrivals, temperature_c=TEMPERATURE_C, wind_m_per_s=(4.0, -3.0))
    assert still.position_m is not None and windy.position_m is not None
    assert horizontal_error_m(still.position_m, source) > 1.0  # the wind moves the apparent source
    assert horizontal_error_m(windy.position_m, source) < 0.1
    # The correction is first order in |w| / c; what is left of the emission time is second order.
    assert abs(windy.origin_time_ns - EMISSION_NS) < 500_000  # type: ignore[operator]
    assert np.abs(windy.residuals_m).max() < 0.05
    with pytest.raises(GeometryError, match="wind_m_per_s"):
        locate(arrivals, temperature_c=TEMPERATURE_C, wind_m_per_s=(float("nan"), 0.0))
