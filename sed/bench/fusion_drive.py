"""A simulated city's detections through the real incident builder, in process, in virtual time.

:func:`run_in_process` does what the fusion node's loop does (:mod:`sed.fusion.node`),
with the clock replaced by the scenario's: every pole's position is noted at the start
and every :data:`HEARTBEAT_INTERVAL_S` as its heartbeats would, each detection is added
when it reaches the node and the builder is polled right after it and every
:data:`POLL_INTERVAL_MS` of virtual time until the next one (the node's receive timeout),
then polled until nothing is pending. Every incident update is kept with the virtual time
it came out, so the scorer (:mod:`sed.bench.fusion_score`) measures delays as the node
would have produced them. CPU time (``time.process_time``) is counted inside ``add`` and
``poll`` only: *busy* while detections are pending, *idle* for polls with nothing pending
(what the node spends waiting). Virtual time does not advance while the builder computes:
the delays measured here are the builder's waits alone (end to end adds the CPU and the wire).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from sed import wire
from sed.bench.fusion_sim import Scenario, grid_positions, pole_id
from sed.config import FusionSection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.node import POLL_TIMEOUT_MS
from sed.units import NS_PER_S

#: The builder is polled this often between detections, ms: the node's receive timeout.
POLL_INTERVAL_MS = POLL_TIMEOUT_MS
#: Poles' positions are noted this often, as their heartbeats would, s (the sensor's default).
HEARTBEAT_INTERVAL_S = 5.0
#: After the last detection the builder is polled at most this long (virtual time) to drain, s.
DRAIN_MAX_S = 120.0
#: Margin beyond the farthest pole given to the builder as the site radius, m.
SITE_MARGIN_M = 500.0


def default_fusion(*, hearing_range_m: float | None = None) -> FusionSection:
    """The server's default ``[fusion]`` section, rounds not merged (the key paths are never read in process).

    ``hearing_range_m``: the city's hearing radius, set when the section has that key (so
    the benchmark also runs against a checkout from before it existed, for comparison).
    """
    # Every simulated source is an independent sound: rounds are not merged into one incident
    # (its wire form carries one position), so each source is scored as its own incident.
    keys: dict[str, object] = {"secret_key_file": "unused", "authorized_keys_dir": "unused", "incident_merge_s": 0.0}
    if hearing_range_m is not None and "hearing_range_m" in FusionSection.model_fields:
        keys["hearing_range_m"] = hearing_range_m
    return FusionSection.model_validate(keys)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Update:
    """One incident as it was created or changed, and when it came out (scenario time base), ns."""

    at_ns: int
    incident: wire.Incident


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunResult:
    """What one in-process run produced.

    ``fed_until_ns`` is the received time of the last detection fed; with ``truncated``
    the CPU budget ran out before the scenario's end, and only the sources heard entirely
    by then can be scored.
    """

    updates: list[Update]
    n_fed: int
    fed_until_ns: int
    truncated: bool
    drained: bool
    cpu_busy_s: float
    cpu_idle_s: float
    n_polls: int
    wall_s: float

    @property
    def cpu_s_per_detection(self) -> float:
        """Busy CPU (add + polls with detections pending) per detection fed, s."""
        return self.cpu_busy_s / self.n_fed if self.n_fed else float("nan")

    @property
    def detections_per_cpu_s(self) -> float:
        """The in-process throughput: detections fed per busy CPU second."""
        return self.n_fed / self.cpu_busy_s if self.cpu_busy_s > 0 else float("nan")


def builder_for(scenario: Scenario, config: FusionSection | None = None) -> IncidentBuilder:
    """An incident builder for the scenario's site: its temperature, a radius past its farthest pole,
    and (with the default ``config``) its hearing radius."""
    hearing_range_m = float(scenario.settings["hearing_radius_m"])
    return IncidentBuilder(
        config or default_fusion(hearing_range_m=hearing_range_m),
        temperature_c=scenario.temperature_c,
        site_radius_m=scenario.radius_m + SITE_MARGIN_M,
    )


def run_in_process(
    scenario: Scenario, *, config: FusionSection | None = None, max_cpu_s: float | None = None
) -> RunResult:
    """Feed ``scenario`` to a fresh :class:`IncidentBuilder`; see the module docstring.

    Parameters
    ----------
    scenario : Scenario
    config : FusionSection, optional
        Default: the server's defaults.
    max_cpu_s : float, optional
        Stop feeding once the builder has used this much CPU (then drain as usual):
        keeps a benchmark cell bounded when the builder is slow.
    """
    builder = builder_for(scenario, config)
    step_ns = POLL_INTERVAL_MS * 1_000_000
    heartbeat_ns = round(HEARTBEAT_INTERVAL_S * NS_PER_S)
    heard = scenario.heard
    updates: list[Update] = []
    busy_s = idle_s = 0.0
    n_polls = 0
    wall_start = time.perf_counter()

    def poll(now_ns: int) -> None:
        nonlocal busy_s, idle_s, n_polls
        pending = builder.n_pending > 0
        t0 = time.process_time()
        out = builder.poll(now_ns)
        spent = time.process_time() - t0
        if pending or out:
            busy_s += spent
        else:
            idle_s += spent
        n_polls += 1
        updates.extend(Update(at_ns=now_ns, incident=incident) for incident in out)

    now_ns = scenario.start_ns
    noted_ns = now_ns
    for sensor_id, position_m in scenario.poles.items():
        builder.note_position(sensor_id, position_m, heard_at_ns=now_ns)
    n_fed, truncated = 0, False
    for item in heard:
        if max_cpu_s is not None and busy_s >= max_cpu_s:
            truncated = True
            break
        # The node's loop: a poll whenever the receive times out, until the next detection arrives.
        while now_ns + step_ns < item.received_at_ns:
            now_ns += step_ns
            poll(now_ns)
        now_ns = max(now_ns, item.received_at_ns)
        if now_ns - noted_ns >= heartbeat_ns:
            for sensor_id, position_m in scenario.poles.items():
                builder.note_position(sensor_id, position_m, heard_at_ns=now_ns)
            noted_ns = now_ns
        t0 = time.process_time()
        builder.add(item.detection, received_at_ns=item.received_at_ns)
        busy_s += time.process_time() - t0
        n_fed += 1
        poll(now_ns)
    fed_until_ns = heard[n_fed - 1].received_at_ns if n_fed else scenario.start_ns
    drain_end_ns = now_ns + round(DRAIN_MAX_S * NS_PER_S)
    while builder.n_pending and now_ns < drain_end_ns:
        now_ns += step_ns
        poll(now_ns)
    return RunResult(
        updates=updates,
        n_fed=n_fed,
        fed_until_ns=fed_until_ns,
        truncated=truncated,
        drained=builder.n_pending == 0,
        cpu_busy_s=busy_s,
        cpu_idle_s=idle_s,
        n_polls=n_polls,
        wall_s=time.perf_counter() - wall_start,
    )


def time_restart(*, n_poles: int = 2000, spacing_m: float = 250.0, config: FusionSection | None = None) -> float:
    """Seconds (wall) to build an incident builder and note ``n_poles`` poles' positions.

    What a restarted node does before it can take its first detection: the issue's
    "restart with 2,000 poles < 1 s".
    """
    positions = grid_positions(n_poles, spacing_m=spacing_m)
    radius_m = float(np.max(np.hypot(positions[:, 0], positions[:, 1]))) + SITE_MARGIN_M
    poles = [(pole_id(k), (float(x), float(y), float(z))) for k, (x, y, z) in enumerate(positions)]
    t0 = time.perf_counter()
    builder = IncidentBuilder(config or default_fusion(), temperature_c=15.0, site_radius_m=radius_m)
    for sensor_id, position_m in poles:
        builder.note_position(sensor_id, position_m, heard_at_ns=0)
    return time.perf_counter() - t0


__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "POLL_INTERVAL_MS",
    "RunResult",
    "Update",
    "builder_for",
    "default_fusion",
    "run_in_process",
    "time_restart",
]
