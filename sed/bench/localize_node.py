"""One live-fire test through the fusion node's incident builder, in virtual time.

``sed bench localize`` measures what the node commits, not a parallel path: every arrival
of a test (a ShotSpotter pulse, or an onset our picker found on a WAV) becomes the
:class:`~sed.wire.Detection` a sensor would send (its directness included), and
:func:`replay` feeds them, in arrival order, to a real
:class:`~sed.fusion.incidents.IncidentBuilder` the way the node's loop does
(:mod:`sed.fusion.node`):

* every pole of the test is noted at the start and every :data:`HEARTBEAT_INTERVAL_S`, as
  its heartbeats would be;
* a detection reaches the node :data:`DETECTOR_LATENCY_S` after its sound reached the pole
  (one fixed latency: every wait in the builder is measured from the received time, so a
  common offset changes nothing but the clock);
* the builder is polled right after each detection and every :data:`POLL_INTERVAL_MS` of
  virtual time between them (the node's receive timeout), then until nothing is pending.

The incidents are kept in their final state (the builder updates one ``incident_id`` in
place); :func:`located_groups` turns the located ones into the groups the scorer
(:mod:`sed.bench.localize_score`) pairs with fired rounds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np

from sed import wire
from sed.config import FusionSection
from sed.errors import ConfigError
from sed.fusion.associate import Group
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.locate import Arrival, Solution, SolveStatus
from sed.fusion.node import POLL_TIMEOUT_MS
from sed.units import NS_PER_S

#: The builder is polled this often between detections, ms: the node's receive timeout.
POLL_INTERVAL_MS = POLL_TIMEOUT_MS
#: Poles' positions are noted this often, as their heartbeats would, s (the sensor's default).
HEARTBEAT_INTERVAL_S = 5.0
#: A detection reaches the node this long after its sound reached the pole, s.
DETECTOR_LATENCY_S = 1.0
#: After the last detection the builder is polled at most this long (virtual time) to drain, s.
DRAIN_MAX_S = 120.0
#: The bench has no classifier and no level: what the detections carry instead.
_SCORE = 1.0
_NO_LEVEL_DBFS = -200.0
#: Keys of the ``[fusion]`` section that only matter to a running server (never read here).
_UNUSED_KEYS = {"secret_key_file": "unused", "authorized_keys_dir": "unused"}


def fusion_settings(overrides: Mapping[str, object]) -> FusionSection:
    """The server's default ``[fusion]`` section with ``overrides`` applied (validated as the server would).

    Raises
    ------
    ConfigError
        Naming the key, the value given and what was expected.
    """
    from pydantic import ValidationError

    try:
        return FusionSection.model_validate({**_UNUSED_KEYS, **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"[fusion] {key} = {first.get('input')!r}: {first['msg']}") from None


def settings_record(config: FusionSection) -> dict[str, object]:
    """The association keys of a ``[fusion]`` section, for the report."""
    return config.model_dump(
        include={
            "association", "min_sensors", "max_timing_error_ms", "hearing_range_m", "association_wait_s",
            "min_participation", "incident_merge_s", "incident_merge_m", "position_max_age_s",
        }
    )  # fmt: skip


def to_detection(arrival: Arrival) -> wire.Detection:
    """The detection a sensor would send for this arrival (synced clock, class gunshot)."""
    x_m, y_m, z_m = arrival.position_m
    return wire.Detection(
        detection_id=arrival.detection_id,
        sensor_id=arrival.sensor_id,
        label=wire.Label(arrival.label),
        score=_SCORE,
        arrival_time_ns=arrival.arrival_time_ns,
        arrival_uncertainty_ns=arrival.uncertainty_ns,
        duration_ms=0.0,
        peak_dbfs=_NO_LEVEL_DBFS,
        position=wire.Position(x_m=x_m, y_m=y_m, z_m=z_m),
        clock_status=wire.ClockStatus.SYNCED,
        directness=float(np.clip(arrival.directness, -wire.MAX_DIRECTNESS, wire.MAX_DIRECTNESS)),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Replay:
    """What the builder committed for one test.

    ``incidents`` holds each incident in its final state, in order of creation;
    ``first_seen_ns`` / ``located_at_ns`` the virtual time an incident first came out of a
    poll and first came out ``located`` (received-time base); ``cpu_s`` the process time
    spent inside ``add`` and ``poll``.
    """

    incidents: list[wire.Incident]
    first_seen_ns: dict[str, int]
    located_at_ns: dict[str, int]
    n_detections: int
    n_updates: int
    cpu_s: float
    drained: bool


def replay(
    arrivals: Sequence[Arrival],
    *,
    config: FusionSection,
    temperature_c: float,
    poles: Mapping[str, tuple[float, float, float]],
    wind_m_per_s: tuple[float, float] | None = None,
    latency_s: float = DETECTOR_LATENCY_S,
) -> Replay:
    """Feed ``arrivals`` to a fresh :class:`IncidentBuilder` as the node would (module docstring).

    Parameters
    ----------
    arrivals : sequence of Arrival
        Any order; fed by arrival time (ties: sensor, then detection id).
    config : FusionSection
    temperature_c : float
    poles : mapping of str to (x, y, z)
        Every pole of the site, m, noted as heartbeats would note them (silent poles count
        against a group that should have been heard by them).
    wind_m_per_s : (float, float), optional
        Passed to the builder (every solve); ``None``: still air.
    latency_s : float >= 0
        Detection latency: received time = arrival time + this, s.
    """
    builder = IncidentBuilder(config, temperature_c=temperature_c, wind_m_per_s=wind_m_per_s)
    ordered = sorted(arrivals, key=lambda a: (a.arrival_time_ns, a.sensor_id, a.detection_id))
    latency_ns = round(latency_s * NS_PER_S)
    step_ns = POLL_INTERVAL_MS * 1_000_000
    heartbeat_ns = round(HEARTBEAT_INTERVAL_S * NS_PER_S)
    final: dict[str, wire.Incident] = {}
    first_seen_ns: dict[str, int] = {}
    located_at_ns: dict[str, int] = {}
    n_updates, cpu_s = 0, 0.0

    def poll(now_ns: int) -> None:
        nonlocal n_updates, cpu_s
        t0 = time.process_time()
        out = builder.poll(now_ns)
        cpu_s += time.process_time() - t0
        n_updates += len(out)
        for incident in out:
            final[incident.incident_id] = incident
            first_seen_ns.setdefault(incident.incident_id, now_ns)
            if incident.stage is wire.IncidentStage.LOCATED:
                located_at_ns.setdefault(incident.incident_id, now_ns)

    def heartbeats(now_ns: int) -> None:
        for sensor_id, position_m in poles.items():
            builder.note_position(sensor_id, position_m, heard_at_ns=now_ns)

    now_ns = (ordered[0].arrival_time_ns if ordered else 0) + latency_ns
    noted_ns = now_ns
    heartbeats(now_ns)
    for arrival in ordered:
        received_ns = arrival.arrival_time_ns + latency_ns
        # The node's loop: a poll whenever the receive times out, until the next detection arrives.
        while now_ns + step_ns < received_ns:
            now_ns += step_ns
            poll(now_ns)
            if now_ns - noted_ns >= heartbeat_ns:
                heartbeats(now_ns)
                noted_ns = now_ns
        now_ns = max(now_ns, received_ns)
        t0 = time.process_time()
        builder.add(to_detection(arrival), received_at_ns=received_ns)
        cpu_s += time.process_time() - t0
        poll(now_ns)
    drain_end_ns = now_ns + round(DRAIN_MAX_S * NS_PER_S)
    while builder.n_pending and now_ns < drain_end_ns:
        now_ns += step_ns
        poll(now_ns)
    return Replay(
        incidents=list(final.values()),
        first_seen_ns=first_seen_ns,
        located_at_ns=located_at_ns,
        n_detections=len(ordered),
        n_updates=n_updates,
        cpu_s=cpu_s,
        drained=builder.n_pending == 0,
    )


def located_groups(result: Replay, arrivals: Sequence[Arrival]) -> dict[str, Group]:
    """Each located incident as a :class:`Group` (its detections' arrivals, its committed fix), by incident id.

    The solution is the incident's: position, origin time, covariance and 95 % radius as
    committed; residuals are not on the wire (empty).
    """
    by_id = {a.detection_id: a for a in arrivals}
    groups = {}
    for incident in result.incidents:
        if incident.stage is not wire.IncidentStage.LOCATED or incident.position is None:
            continue
        p = incident.position
        cov = incident.covariance_m2
        solution = Solution(
            status=SolveStatus.LOCATED,
            position_m=(p.x_m, p.y_m, p.z_m),
            origin_time_ns=incident.origin_time_ns,
            covariance_m2=None if cov is None else np.array([[cov[0], cov[1]], [cov[1], cov[2]]]),
            uncertainty_m=incident.uncertainty_m,
            residuals_m=np.empty(0),
            sensor_ids=tuple(incident.sensor_ids),
        )
        members = tuple(by_id[d] for d in incident.detection_ids if d in by_id)
        groups[incident.incident_id] = Group(label=str(incident.label), arrivals=members, solution=solution)
    return groups


__all__ = [
    "DETECTOR_LATENCY_S",
    "HEARTBEAT_INTERVAL_S",
    "POLL_INTERVAL_MS",
    "Replay",
    "fusion_settings",
    "located_groups",
    "replay",
    "settings_record",
    "to_detection",
]
