"""Pole neighbourhoods: who can have heard one sound, kept up to date pole by pole."""

from __future__ import annotations

import numpy as np
import pytest

from sed.fusion.neighbourhood import PoleMap

S = 1_000_000_000


def _brute_force(positions: dict[str, tuple[float, float, float]], range_m: float) -> dict[str, dict[str, float]]:
    return {
        a: {
            b: float(np.linalg.norm(np.subtract(pa, pb)))
            for b, pb in positions.items()
            if b != a and np.linalg.norm(np.subtract(pa, pb)) <= range_m
        }
        for a, pa in positions.items()
    }


def test_neighbours_are_exactly_the_poles_within_twice_the_hearing_range(rng: np.random.Generator) -> None:
    poles = PoleMap(hearing_range_m=300.0, speed_m_per_s=340.0, max_age_s=600.0)
    positions = {f"p{k}": (float(x), float(y), 4.0) for k, (x, y) in enumerate(rng.uniform(-2000, 2000, (300, 2)))}
    for pole_id, position in positions.items():
        poles.note(pole_id, position, heard_at_ns=0)
    expected = _brute_force(positions, 600.0)
    for pole_id in positions:
        assert poles.neighbours(pole_id) == pytest.approx(expected[pole_id], abs=1e-9)
        assert poles.reach_ns(pole_id) == pytest.approx(max(expected[pole_id].values(), default=0.0) / 340.0 * S, abs=1)


def test_a_pole_that_moves_or_ages_out_leaves_every_neighbour_list_and_reach() -> None:
    poles = PoleMap(hearing_range_m=100.0, speed_m_per_s=340.0, max_age_s=60.0)
    poles.note("a", (0.0, 0.0, 0.0), heard_at_ns=0)
    poles.note("b", (150.0, 0.0, 0.0), heard_at_ns=0)
    poles.note("c", (50.0, 0.0, 0.0), heard_at_ns=30 * S)
    assert poles.neighbours("a") == {"b": 150.0, "c": 50.0} and poles.reach_ns("a") == round(150.0 / 340.0 * S)
    poles.note("b", (1000.0, 0.0, 0.0), heard_at_ns=40 * S)  # moved away: no longer a's neighbour
    assert poles.neighbours("a") == {"c": 50.0} and poles.reach_ns("a") == round(50.0 / 340.0 * S)
    assert poles.max_reach_ns() == round(50.0 / 340.0 * S)
    assert poles.age_out(61 * S) == ["a"]  # heard at 0: older than 60 s; c (30 s) and b (40 s) stay
    assert poles.neighbours("c") == {} and "a" not in poles and len(poles) == 2


def test_poles_within_a_radius_of_a_point() -> None:
    poles = PoleMap(hearing_range_m=100.0, speed_m_per_s=340.0, max_age_s=60.0)
    for k in range(10):
        poles.note(f"p{k}", (k * 30.0, 0.0, 0.0), heard_at_ns=0)
    near = sorted(pole_id for pole_id, _, _ in poles.within((0.0, 0.0, 0.0), 65.0))
    assert near == ["p0", "p1", "p2"]


def test_a_non_finite_position_is_not_noted() -> None:
    poles = PoleMap(hearing_range_m=100.0, speed_m_per_s=340.0, max_age_s=60.0)
    poles.note("a", (float("nan"), 0.0, 0.0), heard_at_ns=0)
    assert len(poles) == 0
