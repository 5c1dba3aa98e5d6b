"""Likelihood association (``associate(..., method="likelihood")``) on synthetic arrivals: what
is particular to it (directness, silent sensors, rounds from one place supporting each other,
many sensors, speed). Behaviour shared with the consensus method is in ``test_associate.py``."""

from __future__ import annotations

import time

import numpy as np

from sed.fusion.associate import LikelihoodModel, associate
from sed.fusion.locate import Arrival
from sed.units import speed_of_sound_m_per_s

TEMPERATURE_C = 0.0
C = speed_of_sound_m_per_s(TEMPERATURE_C)
T0_NS = 1_700_000_000_000_000_000
#: Four to eight sensors a few hundred metres apart, as on a sparse city deployment.
SENSORS_M = np.array(
    [[-420, -80], [-250, 330], [60, 480], [390, 260], [470, -150], [180, -440], [-190, -390], [-40, 60]], dtype=float
)
SOURCE_M = (35.0, -60.0)


def arrival(sensor: int, time_ns: int, *, tag: str, directness: float = 0.0) -> Arrival:
    x, y = SENSORS_M[sensor]
    return Arrival(
        sensor_id=f"s{sensor}", position_m=(float(x), float(y), 0.0), arrival_time_ns=int(time_ns),
        uncertainty_ns=2_000_000, label="gunshot", detection_id=tag, directness=directness,
    )  # fmt: skip


def shot(
    emission_ns: int, sensors: list[int], *, directness: float, rng: np.random.Generator, tag: str
) -> list[Arrival]:
    """Direct arrivals with 3 ms of path jitter."""
    out = []
    for s in sensors:
        delay_s = float(np.hypot(*(SENSORS_M[s] - SOURCE_M))) / C + rng.normal(0.0, 0.003)
        out.append(arrival(s, emission_ns + round(delay_s * 1e9), tag=f"{tag}:s{s}", directness=directness))
    return out


def members(group_arrivals: tuple[Arrival, ...]) -> set[str]:
    return {a.detection_id for a in group_arrivals}


def test_a_weak_round_is_kept_when_rounds_from_the_same_place_support_it(rng: np.random.Generator) -> None:
    four = [0, 2, 4, 6]
    weak = shot(T0_NS + 1_400_000_000, four, directness=0.0, rng=rng, tag="weak")
    alone, _ = associate(weak, temperature_c=TEMPERATURE_C, min_sensors=4, method="likelihood")
    # Four fitting arrivals with no directness score about 2.9, below min_score (5): a
    # chance alignment of four onsets is not worth an alarm on its own.
    assert alone == []
    strong = [
        shot(T0_NS + k * 700_000_000, four, directness=3.0, rng=rng, tag=f"round{k}") for k in (0, 1)
    ]  # fmt: skip
    burst = [a for rounds in strong for a in rounds] + weak
    groups, leftover = associate(burst, temperature_c=TEMPERATURE_C, min_sensors=4, method="likelihood")
    assert [members(g.arrivals) for g in groups] == [members(tuple(r)) for r in (*strong, weak)]
    assert leftover == []
    for group in groups:
        assert group.solution.position_m is not None
        assert np.hypot(*(np.array(group.solution.position_m[:2]) - SOURCE_M)) < 5.0


def test_directness_prefers_the_direct_sound_to_an_echo_that_fits_as_well(rng: np.random.Generator) -> None:
    direct = shot(T0_NS, [0, 2, 4, 6], directness=2.0, rng=rng, tag="direct")
    # On the nearest sensor an echo 60 ms later fits a (wrong) solution just as well with 4 sensors.
    echo = arrival(0, direct[0].arrival_time_ns + 60_000_000, tag="echo", directness=-2.0)
    groups, leftover = associate(
        [*direct, echo], temperature_c=TEMPERATURE_C, min_sensors=4, max_timing_error_s=0.02, method="likelihood"
    )
    assert len(groups) == 1
    assert members(groups[0].arrivals) == members(tuple(direct))
    assert [a.detection_id for a in leftover] == ["echo"]


def test_silent_live_sensors_around_a_source_count_against_it(rng: np.random.Generator) -> None:
    direct = shot(T0_NS, [0, 2, 4, 6], directness=1.0, rng=rng, tag="direct")
    heard, _ = associate(direct, temperature_c=TEMPERATURE_C, min_sensors=4, method="likelihood")
    assert len(heard) == 1
    # The other four sensors lie around the source and report something a second later: they
    # were listening, and heard nothing of this sound.
    live = [arrival(s, T0_NS + 1_000_000_000 + 10_000_000 * s, tag=f"later{s}") for s in (1, 3, 5, 7)]
    doubted, leftover = associate(direct + live, temperature_c=TEMPERATURE_C, min_sensors=4, method="likelihood")
    assert doubted == [] and len(leftover) == 8


def test_many_sensors_are_searched_through_a_sample_of_sensor_triples(rng: np.random.Generator) -> None:
    angles = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    ring = np.column_stack([600 * np.cos(angles), 600 * np.sin(angles)]) * rng.uniform(0.5, 1.0, (24, 1))
    sources = [(0.0, 0.0), (150.0, -80.0), (-60.0, 120.0)]
    stream = []
    for k, source in enumerate(sources):
        for s, xy in enumerate(ring):
            at_ns = T0_NS + k * 2_000_000_000 + round(float(np.hypot(*(xy - source))) / C * 1e9)
            echo_ns = round(rng.uniform(0.015, 0.4) * 1e9)  # a path excess of its own on every sensor
            for tag, delay_ns, directness in (("direct", 0, 2.0), ("echo", echo_ns, -2.0)):
                stream.append(
                    Arrival(sensor_id=f"r{s}", position_m=(float(xy[0]), float(xy[1]), 0.0), label="gunshot",
                            arrival_time_ns=at_ns + delay_ns, detection_id=f"{tag}{k}:{s}", directness=directness)
                )  # fmt: skip
    started = time.thread_time()
    groups, _ = associate(stream, temperature_c=TEMPERATURE_C, min_sensors=5, method="likelihood")
    assert time.thread_time() - started < 5.0
    assert len(groups) == 3
    for group, source in zip(groups, sources, strict=True):
        assert len(group.arrivals) == 24 and all(a.detection_id.startswith("direct") for a in group.arrivals)
        assert group.solution.position_m is not None
        assert np.hypot(*(np.array(group.solution.position_m[:2]) - source)) < 0.5


def test_six_sensors_with_dense_clutter_are_searched_quickly(rng: np.random.Generator) -> None:
    # About what one 10 s Pittsburgh test gives: 6 recordings, ~40 onsets each, 3 rounds.
    six = [0, 1, 2, 3, 4, 5]
    stream = [a for k in range(3) for a in shot(T0_NS + k * 650_000_000, six, directness=3.0, rng=rng, tag=f"r{k}")]
    stream += [
        arrival(s, T0_NS + round(rng.uniform(-1.0, 9.0) * 1e9), tag=f"clutter{s}:{j}", directness=rng.uniform(-4, 1))
        for s in six
        for j in range(37)
    ]  # fmt: skip
    started = time.thread_time()
    groups, _ = associate(stream, temperature_c=TEMPERATURE_C, min_sensors=4, max_timing_error_s=0.04,
                          method="likelihood")  # fmt: skip
    assert time.thread_time() - started < 3.0
    found = [g for g in groups if all(a.detection_id.startswith("r") for a in g.arrivals)]
    assert len(found) == 3 and all(len(g.arrivals) >= 5 for g in found)


def test_model_parameters_are_honoured(rng: np.random.Generator) -> None:
    direct = shot(T0_NS, [0, 2, 4, 6], directness=0.0, rng=rng, tag="direct")
    lenient = LikelihoodModel(min_score=2.0)
    groups, _ = associate(direct, temperature_c=TEMPERATURE_C, min_sensors=4, method="likelihood", likelihood=lenient)
    assert len(groups) == 1
