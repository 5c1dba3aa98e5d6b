"""The simulated city through the real incident builder, in process and in virtual time."""

from __future__ import annotations

import numpy as np

from sed import wire
from sed.bench.fusion_drive import POLL_INTERVAL_MS, run_in_process, time_restart
from sed.bench.fusion_score import score
from sed.bench.fusion_sim import grid_positions, scenario_of, simulate


def two_sources():
    poles = grid_positions(36, spacing_m=250.0)  # 6 x 6, +-625 m
    placed = [(wire.Label.GUNSHOT, (-300.0, -250.0), 1.0), (wire.Label.GLASS_BREAK, (310.0, 280.0), 5.0)]
    return scenario_of(poles, placed, duration_s=8.0, rng=np.random.default_rng(2), spurious_fraction=0.0)


def test_two_well_separated_sources_become_two_located_incidents() -> None:
    scenario = two_sources()
    run = run_in_process(scenario)
    assert run.n_fed == len(scenario.heard) and run.drained and not run.truncated
    figures = score(scenario, run.updates)
    assert figures["sources_located"] == 2 and figures["incidents_located"] == 2 and figures["ghosts"] == 0
    # Updates come out at the node's poll times: never before the first detection reached it.
    first_rx = scenario.heard[0].received_at_ns
    assert all(u.at_ns >= first_rx for u in run.updates)
    assert run.cpu_busy_s > 0 and run.n_polls > 0


def test_polls_run_every_interval_between_detections() -> None:
    scenario = two_sources()
    run = run_in_process(scenario)
    span_ns = scenario.heard[-1].received_at_ns - scenario.heard[0].received_at_ns
    # At least one poll per interval of virtual time from the first detection to the last.
    assert run.n_polls >= span_ns // (POLL_INTERVAL_MS * 1_000_000)


def test_a_cpu_budget_cuts_the_feed_and_says_so() -> None:
    scenario = simulate(n_poles=50, sources_per_min=60, duration_s=10, seed=0)
    run = run_in_process(scenario, max_cpu_s=0.0)
    assert run.truncated and run.n_fed == 0 and run.updates == []
    assert score(scenario, run.updates, until_ns=run.fed_until_ns)["sources"] == 0


def test_restart_timing_builds_a_builder_and_notes_every_pole() -> None:
    assert 0 < time_restart(n_poles=50) < 5.0
