"""Count distribution and Cramér-Rao error against brute force, a hand case and our solver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sed.coverage.locate_error import (
    add_to_count,
    count_distribution,
    error_95_m,
    fisher_increment,
    radius_factor,
)
from sed.fusion.locate import Arrival, locate
from sed.units import speed_of_sound_m_per_s

SIGMA_S = 1e-3
C_M_S = 343.0


def _fisher(cell_xy_m: np.ndarray, sensors_xy_m: np.ndarray, p: np.ndarray, *, sigma_s: float = SIGMA_S) -> np.ndarray:
    return sum(
        fisher_increment(
            cell_xy_m=cell_xy_m, sensor_xy_m=s, p=p[:, j], timing_sigma_s=sigma_s, speed_of_sound_m_s=C_M_S
        )
        for j, s in enumerate(sensors_xy_m)
    )


def test_count_distribution_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0.0, 1.0, size=(5, 6))
    got = count_distribution(p=p)
    for cell in range(p.shape[0]):
        expected = np.zeros(3)
        for heard in itertools.product((0, 1), repeat=p.shape[1]):
            mask = np.array(heard, dtype=bool)
            prob = np.prod(np.where(mask, p[cell], 1.0 - p[cell]))
            if mask.sum() < 3:
                expected[mask.sum()] += prob
        np.testing.assert_allclose(got[cell], expected, atol=1e-12)


def test_adding_sensors_one_at_a_time_equals_all_at_once() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(size=(4, 5))
    dist = count_distribution(p=p[:, :2])
    for j in range(2, 5):
        dist = add_to_count(dist=dist, p=p[:, j])
    np.testing.assert_allclose(dist, count_distribution(p=p), atol=1e-15)


def test_count_distribution_of_certain_sensors() -> None:
    dist = count_distribution(p=np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(dist, [[0, 0, 1], [1, 0, 0], [0, 0, 0]])


def test_square_of_four_sensors_gives_hand_computed_bound() -> None:
    # at the centre each sensor's g = (cos a / c, sin a / c, 1): F = diag(2/c^2, 2/c^2, 4) / sigma^2,
    # so sigma_x = sigma_y = sigma c / sqrt(2) and the 95 % circle is sqrt(-2 ln 0.05) times that
    sensors = np.array([[150.0, 0.0], [0.0, 150.0], [-150.0, 0.0], [0.0, -150.0]])
    cell = np.zeros((1, 2))
    fisher = _fisher(cell, sensors, np.ones((1, 4)))
    np.testing.assert_allclose(fisher[0], np.diag([2 / C_M_S**2, 2 / C_M_S**2, 4.0]) / SIGMA_S**2, rtol=1e-12)
    expected_m = SIGMA_S * C_M_S / np.sqrt(2.0) * np.sqrt(-2.0 * np.log(0.05))
    assert error_95_m(fisher=fisher)[0] == pytest.approx(expected_m, rel=1e-4)


def test_half_probability_doubles_variance() -> None:
    sensors = np.array([[150.0, 0.0], [0.0, 150.0], [-150.0, 0.0], [0.0, -150.0]])
    cell = np.array([[20.0, -35.0]])
    full = error_95_m(fisher=_fisher(cell, sensors, np.ones((1, 4))))
    half = error_95_m(fisher=_fisher(cell, sensors, np.full((1, 4), 0.5)))
    assert half[0] == pytest.approx(full[0] * np.sqrt(2.0), rel=1e-9)


def test_too_few_or_collinear_sensors_are_unobservable() -> None:
    cell = np.array([[10.0, 40.0], [0.0, 0.0]])
    two = np.array([[0.0, 0.0], [100.0, 0.0]])
    line = np.array([[-100.0, 0.0], [0.0, 0.0], [100.0, 0.0], [200.0, 0.0]])
    assert np.all(np.isinf(error_95_m(fisher=_fisher(cell[:1], two, np.ones((1, 2))))))
    # on the sensors' line itself every direction vector is along it
    on_line = np.array([[300.0, 0.0]])
    assert np.isinf(error_95_m(fisher=_fisher(on_line, line, np.ones((1, 4))))[0])
    assert np.isinf(error_95_m(fisher=np.zeros((1, 3, 3)))[0])


def test_radius_factor_spans_one_axis_to_circular() -> None:
    assert radius_factor(variance_ratio=0.0) == pytest.approx(1.959964, abs=1e-5)
    assert radius_factor(variance_ratio=1.0) == pytest.approx(np.sqrt(-2.0 * np.log(0.05)), abs=1e-4)


def test_radius_factor_holds_95_percent_by_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((400_000, 2))
    k = radius_factor(variance_ratio=0.3)
    share = np.mean(z[:, 0] ** 2 + 0.3 * z[:, 1] ** 2 <= k**2)
    assert share == pytest.approx(0.95, abs=0.002)


def test_bound_matches_monte_carlo_of_our_solver() -> None:
    # our least-squares solver is efficient at high SNR: its 95 % error radius over noisy
    # arrivals must match the bound within Monte-Carlo scatter
    rng = np.random.default_rng(11)
    temperature_c = 20.0
    c = speed_of_sound_m_per_s(temperature_c)
    sensors = np.array([[0.0, 0.0], [400.0, 30.0], [350.0, 420.0], [-50.0, 380.0], [180.0, -150.0]])
    source = np.array([120.0, 160.0])
    sigma_s = 2e-3
    fisher = sum(
        fisher_increment(
            cell_xy_m=source[None], sensor_xy_m=s, p=np.ones(1), timing_sigma_s=sigma_s, speed_of_sound_m_s=c
        )
        for s in sensors
    )
    predicted_m = error_95_m(fisher=fisher)[0]
    t0_ns = 1_700_000_000_000_000_000
    errors = []
    for _ in range(600):
        arrivals = [
            Arrival(
                sensor_id=f"s{i}",
                position_m=(float(s[0]), float(s[1]), 0.0),
                arrival_time_ns=t0_ns + round((np.linalg.norm(s - source) / c + rng.normal(0, sigma_s)) * 1e9),
                uncertainty_ns=round(sigma_s * 1e9),
            )
            for i, s in enumerate(sensors)
        ]
        solution = locate(arrivals, temperature_c=temperature_c, robust=False)
        assert solution.position_m is not None
        errors.append(np.hypot(solution.position_m[0] - source[0], solution.position_m[1] - source[1]))
    measured_m = float(np.quantile(errors, 0.95))
    assert measured_m == pytest.approx(predicted_m, rel=0.12)
