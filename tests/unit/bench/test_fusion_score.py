"""Scoring a simulated city's incidents: located, ghosts, isolated sources, delays to alert and fix."""

from __future__ import annotations

import numpy as np
import pytest

from sed import wire
from sed.bench.fusion_drive import Update
from sed.bench.fusion_score import MATCHING_RULE, isolated_mask, score
from sed.bench.fusion_sim import START_NS, Scenario, grid_positions, scenario_of
from sed.units import NS_PER_S

MS = 1_000_000
GUNSHOT, SCREAM = wire.Label.GUNSHOT, wire.Label.SCREAM


def city(placed: list[tuple[wire.Label, tuple[float, float], float]], *, spurious: float = 0.0) -> Scenario:
    poles = grid_positions(100, spacing_m=250.0)  # 10 x 10, +-1125 m
    return scenario_of(poles, placed, duration_s=10.0, rng=np.random.default_rng(1), spurious_fraction=spurious)


def incident(
    incident_id: str,
    label: wire.Label,
    detection_ids: list[str],
    *,
    xy: tuple[float, float] | None = None,
    origin_ns: int = START_NS,
) -> wire.Incident:
    return wire.Incident(
        incident_id=incident_id,
        label=label,
        score=0.9,
        origin_time_ns=origin_ns,
        position=None if xy is None else wire.Position(x_m=xy[0], y_m=xy[1], z_m=1.5),
        uncertainty_m=None if xy is None else 5.0,
        covariance_m2=None if xy is None else [1.0, 0.0, 1.0],
        detection_ids=detection_ids,
        sensor_ids=sorted({d.split(":")[0] for d in detection_ids}),
    )


def ids(scenario: Scenario, source_id: int) -> list[str]:
    return [h.detection.detection_id for h in scenario.detections_of(source_id)]


def first_received_ns(scenario: Scenario, source_id: int) -> int:
    return scenario.detections_of(source_id)[0].received_at_ns


def test_isolated_means_no_other_source_within_800_m_and_3_s() -> None:
    far_apart = city([(GUNSHOT, (0, 0), 1.0), (GUNSHOT, (801, 0), 1.0), (SCREAM, (0, 0), 4.1)])
    assert isolated_mask(far_apart).tolist() == [True, True, True]
    crowded = city([(GUNSHOT, (0, 0), 1.0), (GUNSHOT, (801, 0), 1.0), (SCREAM, (0, 0), 4.1), (SCREAM, (0, 799), 3.9)])
    assert isolated_mask(crowded).tolist() == [False, True, False, False]


def test_located_ghost_unlocated_and_delays_on_hand_built_incidents() -> None:
    scenario = city(
        [(GUNSHOT, (-800.0, -800.0), 1.0), (GUNSHOT, (800.0, 800.0), 1.0), (SCREAM, (-700.0, -800.0), 2.5)],
        spurious=0.2,
    )
    emission = [s.emission_ns for s in scenario.sources]
    t0 = first_received_ns(scenario, 0)
    spurious_id = next(d for d, s in scenario.source_of.items() if s is None)
    updates = [
        # Source 0: alerted 30 ms after its first detection, located within 20 m / 0.1 s 200 ms later.
        Update(at_ns=t0 + 30 * MS, incident=incident("a", GUNSHOT, ids(scenario, 0)[:1])),
        Update(
            at_ns=t0 + 230 * MS,
            incident=incident("a", GUNSHOT, ids(scenario, 0), xy=(-790.0, -800.0), origin_ns=emission[0] + 50 * MS),
        ),
        # 30 m off source 1: a ghost, and source 1 is not located.
        Update(
            at_ns=t0 + 400 * MS,
            incident=incident("b", GUNSHOT, ids(scenario, 1), xy=(830.0, 800.0), origin_ns=emission[1]),
        ),
        # Right place, 0.2 s off: a ghost.
        Update(
            at_ns=t0 + 2000 * MS,
            incident=incident("c", SCREAM, ids(scenario, 2), xy=(-700.0, -800.0), origin_ns=emission[2] + 200 * MS),
        ),
        # Right place and time, wrong class: a ghost.
        Update(
            at_ns=t0 + 2000 * MS,
            incident=incident("d", GUNSHOT, ids(scenario, 2)[:3], xy=(-700.0, -800.0), origin_ns=emission[2]),
        ),
        Update(at_ns=t0 + 3000 * MS, incident=incident("e", SCREAM, [spurious_id])),
    ]
    figures = score(scenario, updates)
    assert figures["sources"] == 3 and figures["sources_located"] == 1
    assert figures["located_fraction"] == pytest.approx(1 / 3)
    assert figures["incidents"] == 5 and figures["incidents_located"] == 4 and figures["incidents_unlocated"] == 1
    assert figures["ghosts"] == 3 and figures["ghost_fraction"] == pytest.approx(3 / 4)
    # Sources 0 and 2 are 100 m and 1.5 s apart; source 1 alone is isolated, and it was missed.
    assert figures["sources_isolated"] == 1 and figures["located_fraction_isolated"] == 0.0
    assert figures["first_alert_s"]["n"] == 3 and figures["sources_never_alerted"] == 0
    assert figures["located_s"]["n"] == 1
    assert figures["located_s"]["p50"] == pytest.approx(0.230)
    alert_0 = 0.030
    alert_1 = (t0 + 400 * MS - first_received_ns(scenario, 1)) / NS_PER_S
    alert_2 = (t0 + 2000 * MS - first_received_ns(scenario, 2)) / NS_PER_S
    assert figures["first_alert_s"]["p50"] == pytest.approx(sorted([alert_0, alert_1, alert_2])[1])


def test_a_final_update_that_moves_away_unlocates_the_source_but_the_first_fix_still_counts() -> None:
    scenario = city([(GUNSHOT, (0.0, 0.0), 1.0)])
    emission, t0 = scenario.sources[0].emission_ns, first_received_ns(scenario, 0)
    near = incident("a", GUNSHOT, ids(scenario, 0), xy=(5.0, 0.0), origin_ns=emission)
    far = incident("a", GUNSHOT, ids(scenario, 0), xy=(50.0, 0.0), origin_ns=emission)
    figures = score(scenario, [Update(at_ns=t0 + 500 * MS, incident=far), Update(at_ns=t0 + 100 * MS, incident=near)])
    # Updates are taken in time order whatever order they come in: the last one (far) is final.
    assert figures["sources_located"] == 0 and figures["ghosts"] == 1
    assert figures["located_s"]["p50"] == pytest.approx(0.1)


def test_origin_offset_and_cut_off_runs() -> None:
    scenario = city([(GUNSHOT, (0.0, 0.0), 1.0), (GUNSHOT, (0.0, 0.0), 8.0)])
    emission = scenario.sources[0].emission_ns
    shifted = incident("a", GUNSHOT, ids(scenario, 0), xy=(0.0, 0.0), origin_ns=emission + 3600 * NS_PER_S)
    update = Update(at_ns=first_received_ns(scenario, 0) + MS, incident=shifted)
    assert score(scenario, [update])["sources_located"] == 0
    assert score(scenario, [update], origin_offset_ns=3600 * NS_PER_S)["sources_located"] == 1
    # A run cut off before the second source was heard scores the first only.
    cut = score(scenario, [update], origin_offset_ns=3600 * NS_PER_S, until_ns=first_received_ns(scenario, 1))
    assert cut["sources"] == 1 and cut["located_fraction"] == 1.0


def test_sources_heard_by_too_few_poles_are_not_locatable() -> None:
    scenario = city([(GUNSHOT, (1125.0, 1125.0), 1.0), (GUNSHOT, (0.0, 0.0), 1.0)])  # a corner: 4 poles
    figures = score(scenario, [], min_sensors=5)
    assert figures["sources"] == 2 and figures["sources_locatable"] == 1
    assert figures["located_fraction"] == 0.0 and figures["ghost_fraction"] is None


def test_the_rule_is_stated_with_its_numbers() -> None:
    assert "20 m" in MATCHING_RULE and "0.1 s" in MATCHING_RULE and "800 m" in MATCHING_RULE
