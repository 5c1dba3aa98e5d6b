"""Association around one seed: the group of poles that heard its sound, among unrelated detections."""

from __future__ import annotations

import numpy as np

from sed.fusion.locate import Arrival, locate
from sed.fusion.seeded import SeedSettings, associate_seed, fits
from sed.units import speed_of_sound_m_per_s

C = speed_of_sound_m_per_s(15.0)
T0 = 1_700_000_000_000_000_000
GRID = [(x * 250.0, y * 250.0, 4.0) for x in range(-2, 3) for y in range(-2, 3)]
SETTINGS = SeedSettings(temperature_c=15.0, tolerance_m=C * 0.005, hearing_range_m=400.0)


def _heard(source: tuple[float, float], emission_ns: int, tag: str) -> list[Arrival]:
    out = []
    for k, pole in enumerate(GRID):
        distance_m = float(np.hypot(pole[0] - source[0], pole[1] - source[1]))
        if distance_m <= 400.0:
            out.append(
                Arrival(
                    sensor_id=f"p{k}",
                    position_m=pole,
                    arrival_time_ns=emission_ns + round(distance_m / C * 1e9),
                    label="gunshot",
                    detection_id=f"p{k}:{tag}",
                )
            )
    return out


def _nowhere(point: tuple[float, float, float], radius_m: float) -> list[str]:
    return []


def test_the_seeds_sound_is_found_among_an_overlapping_sounds_detections() -> None:
    first = _heard((60.0, 30.0), T0, "a")
    second = _heard((-100.0, 140.0), T0 + 120_000_000, "b")
    seed = first[0]
    group = associate_seed(seed, [*first[1:], *second], settings=SETTINGS, poles_near=_nowhere)
    assert group is not None
    assert {a.detection_id for a in group.arrivals} == {a.detection_id for a in first}
    assert np.hypot(group.solution.position_m[0] - 60.0, group.solution.position_m[1] - 30.0) < 0.5


def test_a_group_most_live_poles_around_it_did_not_hear_is_refused() -> None:
    heard = _heard((60.0, 30.0), T0, "a")[:4]  # four of the poles around the point

    def every_pole(point: tuple[float, float, float], radius_m: float) -> list[str]:
        return [f"p{k}" for k, pole in enumerate(GRID) if np.hypot(pole[0] - point[0], pole[1] - point[1]) <= radius_m]

    settings = SeedSettings(temperature_c=15.0, tolerance_m=C * 0.005, hearing_range_m=400.0, min_participation=0.9)
    assert associate_seed(heard[0], heard[1:], settings=settings, poles_near=every_pole) is None
    assert associate_seed(heard[0], heard[1:], settings=SETTINGS, poles_near=_nowhere) is not None


def test_three_poles_with_a_fourth_candidate_are_not_a_group_of_three() -> None:
    three = _heard((60.0, 30.0), T0, "a")[:3]
    stray = Arrival(sensor_id="p24", position_m=GRID[24], arrival_time_ns=three[0].arrival_time_ns, label="gunshot")
    assert associate_seed(three[0], three[1:], settings=SETTINGS, poles_near=_nowhere) is not None
    assert associate_seed(three[0], [*three[1:], stray], settings=SETTINGS, poles_near=_nowhere) is None


def test_a_late_arrival_fits_a_shot_only_within_tolerance_and_hearing_range() -> None:
    heard = _heard((60.0, 30.0), T0, "a")
    solution = locate(heard[:-1], temperature_c=15.0)
    late = heard[-1]
    assert fits(late, solution, c=C, tolerance_m=SETTINGS.tolerance_m, hearing_range_m=400.0)
    shifted = Arrival(
        sensor_id=late.sensor_id, position_m=late.position_m, arrival_time_ns=late.arrival_time_ns + 20_000_000
    )
    assert not fits(shifted, solution, c=C, tolerance_m=SETTINGS.tolerance_m, hearing_range_m=400.0)
    assert not fits(late, solution, c=C, tolerance_m=SETTINGS.tolerance_m, hearing_range_m=10.0)
