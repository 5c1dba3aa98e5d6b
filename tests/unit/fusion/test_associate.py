"""Association on synthetic pulse streams: direct sounds, echoes, unrelated pulses, several shots.

Behaviour both methods share is tested for both; what is particular to the likelihood method
is in ``test_likelihood.py``."""

from __future__ import annotations

import numpy as np
import pytest

from sed.errors import ConfigError
from sed.fusion.associate import METHODS, associate
from sed.fusion.locate import Arrival, SolveStatus
from sed.units import speed_of_sound_m_per_s

TEMPERATURE_C = 0.0
C = speed_of_sound_m_per_s(TEMPERATURE_C)
T0_NS = 1_700_000_000_000_000_000
SENSORS_M = np.array(
    [[-420, -80], [-250, 330], [60, 480], [390, 260], [470, -150], [180, -440], [-190, -390], [-40, 60]], dtype=float
)


def arrival(
    sensor: int, time_ns: int, *, label: str = "gunshot", tag: str = "", quality: float = 1.0, directness: float = 0.0
) -> Arrival:
    x, y = SENSORS_M[sensor]
    return Arrival(
        sensor_id=f"s{sensor}", position_m=(float(x), float(y), 0.0), arrival_time_ns=int(time_ns),
        uncertainty_ns=1_000_000, label=label, detection_id=tag or f"s{sensor}@{time_ns}", quality=quality,
        directness=directness,
    )  # fmt: skip


def shot(
    source_xy_m: tuple[float, float],
    emission_ns: int,
    rng: np.random.Generator,
    *,
    sensors: list[int] | None = None,
    jitter_s: float = 5e-4,
    label: str = "gunshot",
    tag: str = "direct",
) -> list[Arrival]:
    """Direct arrivals of one sound at ``sensors`` (default all), with Gaussian timing jitter."""
    out = []
    for s in range(len(SENSORS_M)) if sensors is None else sensors:
        distance_m = float(np.hypot(*(SENSORS_M[s] - source_xy_m)))
        time_ns = emission_ns + round((distance_m / C + rng.normal(0.0, jitter_s)) * 1e9)
        out.append(arrival(s, time_ns, label=label, tag=f"{tag}:s{s}:{emission_ns}"))
    return out


def echoes(direct: list[Arrival], rng: np.random.Generator, per_sensor: int = 3) -> list[Arrival]:
    """Later copies of each direct arrival (independent path excess per sensor: 15-400 ms)."""
    out = []
    for a in direct:
        for k, delay_s in enumerate(np.sort(rng.uniform(0.015, 0.4, per_sensor))):
            out.append(
                arrival(int(a.sensor_id[1:]), a.arrival_time_ns + round(delay_s * 1e9), tag=f"echo{k}:{a.detection_id}")
            )
    return out


def unrelated(rng: np.random.Generator, n: int, span_s: float) -> list[Arrival]:
    return [
        arrival(int(rng.integers(len(SENSORS_M))), T0_NS + round(rng.uniform(-1.0, span_s) * 1e9), tag=f"noise{k}")
        for k in range(n)
    ]


def direct_ids(group_arrivals: tuple[Arrival, ...]) -> set[str]:
    return {a.detection_id for a in group_arrivals}


@pytest.mark.parametrize("method", METHODS)
def test_one_shot_is_found_among_echoes_and_unrelated_pulses(rng: np.random.Generator, method: str) -> None:
    source = (35.0, -60.0)
    direct = shot(source, T0_NS, rng)
    stream = direct + echoes(direct, rng) + unrelated(rng, 12, 2.0)
    rng.shuffle(stream)  # type: ignore[arg-type]
    # Four of 36 stray pulses align by chance somewhere; negative evidence (most live sensors
    # around a real source hear it) rejects such groups.
    groups, leftover = associate(
        stream, temperature_c=TEMPERATURE_C, min_sensors=4, min_participation=0.6, method=method
    )
    assert len(groups) == 1
    (group,) = groups
    assert direct_ids(group.arrivals) == {a.detection_id for a in direct}
    assert group.solution.status is SolveStatus.LOCATED and group.solution.position_m is not None
    assert np.hypot(group.solution.position_m[0] - source[0], group.solution.position_m[1] - source[1]) < 2.0
    assert len(leftover) == len(stream) - len(direct)
    assert all(a.detection_id.startswith(("echo", "noise")) for a in leftover)


@pytest.mark.parametrize("method", METHODS)
def test_shots_seconds_apart_become_separate_groups(rng: np.random.Generator, method: str) -> None:
    source = (-120.0, 90.0)
    emissions = [T0_NS, T0_NS + 1_500_000_000, T0_NS + 4_200_000_000]
    directs = [shot(source, e, rng) for e in emissions]
    stream = [a for d in directs for a in d] + [a for d in directs for a in echoes(d, rng, per_sensor=2)]
    groups, _ = associate(stream, temperature_c=TEMPERATURE_C, min_sensors=4, min_participation=0.6, method=method)
    assert len(groups) == 3
    for group, direct, emission in zip(groups, directs, emissions, strict=True):  # groups come sorted by time
        assert direct_ids(group.arrivals) == {a.detection_id for a in direct}
        assert abs(group.solution.origin_time_ns - emission) < 2_000_000  # type: ignore[operator]


@pytest.mark.parametrize("method", METHODS)
def test_two_places_at_once_and_classes_never_mix(rng: np.random.Generator, method: str) -> None:
    gunshot = shot((0.0, 0.0), T0_NS, rng)
    glass = shot((200.0, 150.0), T0_NS + 50_000_000, rng, label="glass_break", tag="glass")
    groups, leftover = associate(gunshot + glass, temperature_c=TEMPERATURE_C, min_sensors=4, method=method)
    assert sorted(g.label for g in groups) == ["glass_break", "gunshot"]
    for group in groups:
        assert {a.label for a in group.arrivals} == {group.label}
        assert len(group.arrivals) == len(SENSORS_M)
    assert leftover == []


@pytest.mark.parametrize("method", METHODS)
def test_mirror_image_of_a_wall_reflection_is_not_a_second_source(rng: np.random.Generator, method: str) -> None:
    source = np.array([60.0, 40.0])
    direct = shot(tuple(source), T0_NS, rng)
    # A long wall along y = 250: sensors south of it hear the reflection from the image source.
    image = (source[0], 2 * 250.0 - source[1])
    south = [s for s in range(len(SENSORS_M)) if SENSORS_M[s, 1] < 250.0]
    reflection = shot(image, T0_NS, rng, sensors=south, tag="reflection")
    groups, leftover = associate(direct + reflection, temperature_c=TEMPERATURE_C, min_sensors=4, method=method)
    assert len(groups) == 1
    assert direct_ids(groups[0].arrivals) == {a.detection_id for a in direct}
    assert {a.detection_id for a in leftover} == {a.detection_id for a in reflection}


@pytest.mark.parametrize("method", METHODS)
def test_a_sound_reported_twice_by_one_sensor_is_a_duplicate_not_a_leftover(
    rng: np.random.Generator, method: str
) -> None:
    direct = shot((10.0, 10.0), T0_NS, rng)
    repeat = arrival(2, direct[2].arrival_time_ns + 800_000, tag="repeat")
    groups, leftover = associate([*direct, repeat], temperature_c=TEMPERATURE_C, min_sensors=4, method=method)
    assert len(groups) == 1 and leftover == []
    assert [a.detection_id for a in groups[0].duplicates] == ["repeat"]


def test_echo_with_higher_quality_loses_to_the_direct_sound(rng: np.random.Generator) -> None:
    direct = shot((-50.0, 20.0), T0_NS, rng, sensors=[0, 2, 4, 6], jitter_s=2e-3)
    stream = list(direct)
    # On the nearest sensor an echo 60 ms later fits a (wrong) solution just as well with 4 sensors.
    stream.append(arrival(0, direct[0].arrival_time_ns + 60_000_000, tag="echo"))
    groups, leftover = associate(stream, temperature_c=TEMPERATURE_C, min_sensors=4, max_timing_error_s=0.02)
    assert len(groups) == 1
    assert direct_ids(groups[0].arrivals) == {a.detection_id for a in direct}
    assert [a.detection_id for a in leftover] == ["echo"]


@pytest.mark.parametrize("method", METHODS)
def test_too_few_sensors_leave_everything_over(rng: np.random.Generator, method: str) -> None:
    direct = shot((0.0, 0.0), T0_NS, rng, sensors=[1, 3, 5])
    groups, leftover = associate(direct, temperature_c=TEMPERATURE_C, min_sensors=4, method=method)
    assert groups == [] and len(leftover) == 3


def test_three_sensors_form_a_group_only_when_allowed_and_unambiguous(rng: np.random.Generator) -> None:
    direct = shot((0.0, 0.0), T0_NS, rng, sensors=[1, 3, 5], jitter_s=0.0)  # source inside the triangle
    groups, _ = associate(direct, temperature_c=TEMPERATURE_C, min_sensors=3)
    assert len(groups) == 1 and groups[0].solution.status is SolveStatus.LOCATED


def test_sparse_participation_is_rejected_when_asked(rng: np.random.Generator) -> None:
    # Four of the eight sensors hear the sound; the other four are live (they report a
    # second later) and lie around it, so participation is 50 %.
    direct = shot((0.0, 0.0), T0_NS, rng, sensors=[0, 2, 4, 6])
    alive = [arrival(s, T0_NS + 1_000_000_000 + 10_000_000 * s, tag=f"later{s}") for s in (1, 3, 5, 7)]
    kept, _ = associate(direct + alive, temperature_c=TEMPERATURE_C, min_sensors=4, min_participation=0.4)
    dropped, _ = associate(direct + alive, temperature_c=TEMPERATURE_C, min_sensors=4, min_participation=0.75)
    assert len(kept) == 1 and dropped == []


@pytest.mark.parametrize(("kwargs"), [{"min_sensors": 2}, {"min_participation": 1.5}, {"method": "vote"}])
def test_bad_settings_raise_config_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        associate([], temperature_c=TEMPERATURE_C, **kwargs)  # type: ignore[arg-type]
