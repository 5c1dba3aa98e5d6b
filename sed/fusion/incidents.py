"""Incident life cycle: detections in, located incidents out.

Detections wait ``association_wait_s`` for their peers from other sensors, then are
associated (:func:`~sed.fusion.associate.associate`) into shots. A shot joins an open
incident of the same class that is close in time and space (several rounds become one
incident with ``n_shots`` > 1); a late detection that fits an existing shot is added to it
and the shot is solved again. Detections that no shot explains become an incident
without a position (the sensors that heard it are the region) once they are too old to
still be joined: the operator hears about a scream one pole caught, but no point is
invented.
"""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np

from sed import wire
from sed.config import FusionSection
from sed.fusion.associate import Group, associate
from sed.fusion.locate import NS_PER_S, Arrival, Solution, SolveStatus, locate, speed_of_sound_m_per_s


@dataclasses.dataclass
class _Pending:
    arrival: Arrival
    detection: wire.Detection
    received_at_ns: int


@dataclasses.dataclass
class _Open:
    incident_id: str
    label: str
    created_at_ns: int
    shots: list[Group] = dataclasses.field(default_factory=list)
    unlocated: list[wire.Detection] = dataclasses.field(default_factory=list)
    detections: dict[str, wire.Detection] = dataclasses.field(default_factory=dict)
    last_activity_ns: int = 0


def arrival_of(detection: wire.Detection) -> Arrival:
    """The localisation view of a detection."""
    p = detection.position
    return Arrival(
        sensor_id=detection.sensor_id,
        position_m=(p.x_m, p.y_m, p.z_m),
        arrival_time_ns=detection.arrival_time_ns,
        uncertainty_ns=max(detection.arrival_uncertainty_ns, 1),
        label=str(detection.label),
        detection_id=detection.detection_id,
    )


class IncidentBuilder:
    """Turns a stream of detections into incident updates.

    Parameters
    ----------
    config : FusionSection
    temperature_c : float
    """

    def __init__(self, config: FusionSection, *, temperature_c: float) -> None:
        self.config = config
        self.temperature_c = temperature_c
        self._wait_ns = int(config.association_wait_s * NS_PER_S)
        # Longest time a sound takes across the sensors heard so far: bounds how long to wait for peers.
        self._transit_ns = 0
        self._sensor_positions: dict[str, tuple[float, float, float]] = {}
        self._tolerance_s = config.max_timing_error_ms / 1000
        self._pending: list[_Pending] = []
        self._last_associated: frozenset[str] = frozenset()
        self._open: list[_Open] = []

    def add(self, detection: wire.Detection, *, received_at_ns: int) -> None:
        """Queue a new (already de-duplicated) detection."""
        arrival = arrival_of(detection)
        if self._sensor_positions.get(arrival.sensor_id) != arrival.position_m:
            self._sensor_positions[arrival.sensor_id] = arrival.position_m
            positions = np.array(list(self._sensor_positions.values()))
            baseline_m = float(np.max(np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)))
            self._transit_ns = int(baseline_m / speed_of_sound_m_per_s(self.temperature_c) * NS_PER_S)
        self._pending.append(_Pending(arrival, detection, received_at_ns))

    def poll(self, now_ns: int) -> list[wire.Incident]:
        """Associate what has waited long enough; return every incident created or changed."""
        changed: dict[str, _Open] = {}
        self._join_late_detections(changed, now_ns)
        waited = bool(self._pending) and now_ns - min(p.received_at_ns for p in self._pending) >= self._wait_ns
        pending_ids = frozenset(p.detection.detection_id for p in self._pending)
        # Association is deterministic: run it again only when the pending set has changed.
        if (waited or self._overdetermined()) and pending_ids != self._last_associated:
            self._associate_pending(changed, now_ns)
            self._last_associated = frozenset(p.detection.detection_id for p in self._pending)
        self._expire_leftovers(changed, now_ns)
        horizon = int(self.config.incident_merge_s * NS_PER_S) + self._wait_ns + self._transit_ns
        self._open = [o for o in self._open if now_ns - o.last_activity_ns <= horizon]
        return [self._to_wire(o) for o in changed.values()]

    # ----------------------------------------------------------------- steps

    def _overdetermined(self) -> bool:
        """One class already has more sensors than a fix needs: associate now, not after the wait.

        Sensors that report later join the shot they fit (:meth:`_join_existing_shot`).
        """
        sensors_by_label: dict[str, set[str]] = {}
        for pending in self._pending:
            sensors_by_label.setdefault(pending.arrival.label, set()).add(pending.arrival.sensor_id)
        return any(len(s) > self.config.min_sensors for s in sensors_by_label.values())

    def _join_late_detections(self, changed: dict[str, _Open], now_ns: int) -> None:
        """Late detections that fit a located shot join it at once: no wait, as the shot's
        solution already predicts when each further sensor hears it."""
        if not any(o.shots for o in self._open):
            return
        still_pending = []
        for pending in self._pending:
            incident = (
                self._join_existing_shot(pending)
                if pending.detection.clock_status is not wire.ClockStatus.UNSYNCED
                else None
            )
            if incident is None:
                still_pending.append(pending)
                continue
            changed[incident.incident_id] = incident
            incident.last_activity_ns = now_ns
        self._pending = still_pending

    def _associate_pending(self, changed: dict[str, _Open], now_ns: int) -> None:
        timed = [p for p in self._pending if p.detection.clock_status is not wire.ClockStatus.UNSYNCED]
        by_id = {p.detection.detection_id: p for p in self._pending}
        groups, _ = associate(
            [p.arrival for p in timed],
            temperature_c=self.temperature_c,
            max_timing_error_s=self._tolerance_s,
            min_sensors=self.config.min_sensors,
        )
        for group in groups:
            incident = self._incident_for_shot(group, now_ns)
            incident.shots.append(group)
            for arrival in (*group.arrivals, *group.duplicates):  # duplicates: one sound reported twice
                incident.detections[arrival.detection_id] = by_id.pop(arrival.detection_id).detection
            incident.last_activity_ns = now_ns
            changed[incident.incident_id] = incident
        self._pending = list(by_id.values())

    def _join_existing_shot(self, pending: _Pending) -> _Open | None:
        """Add a late detection to a shot whose solution predicts its arrival time."""
        c = speed_of_sound_m_per_s(self.temperature_c)
        for incident in self._open:
            if incident.label != pending.arrival.label:
                continue
            for index, shot in enumerate(incident.shots):
                solution = shot.solution
                if pending.arrival.sensor_id in solution.sensor_ids or solution.position_m is None:
                    continue
                distance_m = float(np.linalg.norm(np.subtract(solution.position_m, pending.arrival.position_m)))
                predicted_ns = (solution.origin_time_ns or 0) + distance_m / c * NS_PER_S
                if abs(pending.arrival.arrival_time_ns - predicted_ns) <= 2 * self._tolerance_s * NS_PER_S:
                    arrivals = (*shot.arrivals, pending.arrival)
                    resolved = locate(arrivals, temperature_c=self.temperature_c)
                    if resolved.status is SolveStatus.LOCATED:
                        incident.shots[index] = Group(label=shot.label, arrivals=arrivals, solution=resolved)
                        incident.detections[pending.detection.detection_id] = pending.detection
                        return incident
        return None

    def _incident_for_shot(self, group: Group, now_ns: int) -> _Open:
        solution = group.solution
        merge_ns = self.config.incident_merge_s * NS_PER_S
        for incident in self._open:
            if incident.label != group.label or not incident.shots:
                continue
            last = incident.shots[-1].solution
            close_in_time = abs((solution.origin_time_ns or 0) - (last.origin_time_ns or 0)) <= merge_ns
            distance_m = float(np.linalg.norm(np.subtract(solution.position_m, last.position_m)))
            if close_in_time and distance_m <= self.config.incident_merge_m:
                return incident
        incident = _Open(incident_id=uuid.uuid4().hex, label=group.label, created_at_ns=now_ns)
        self._open.append(incident)
        return incident

    def _expire_leftovers(self, changed: dict[str, _Open], now_ns: int) -> None:
        """Detections nobody joined within wait + transit time become unlocated incidents.

        A peer of the same sound reaches the node at most the sound's transit across the
        sensors plus the spread of detection latencies (the wait) after this one; while this
        one is pending, a peer's arrival re-runs association at once (the oldest pending has
        waited), so nothing is gained by waiting longer.
        """
        expired = [p for p in self._pending if now_ns - p.received_at_ns >= self._wait_ns + self._transit_ns]
        if not expired:
            return
        self._pending = [p for p in self._pending if p not in expired]
        for pending in sorted(expired, key=lambda p: p.arrival.arrival_time_ns):
            incident = next(
                (
                    o
                    for o in self._open
                    if o.label == pending.arrival.label
                    and not o.shots
                    and abs(pending.arrival.arrival_time_ns - min(d.arrival_time_ns for d in o.unlocated))
                    <= self._transit_ns
                ),
                None,
            )
            if incident is None:
                incident = _Open(incident_id=uuid.uuid4().hex, label=pending.arrival.label, created_at_ns=now_ns)
                self._open.append(incident)
            incident.unlocated.append(pending.detection)
            incident.detections[pending.detection.detection_id] = pending.detection
            incident.last_activity_ns = now_ns
            changed[incident.incident_id] = incident

    # ----------------------------------------------------------------- output

    def _to_wire(self, incident: _Open) -> wire.Incident:
        detections = sorted(incident.detections.values(), key=lambda d: d.arrival_time_ns)
        best: Solution | None = None
        if incident.shots:
            best = min((s.solution for s in incident.shots), key=lambda s: s.uncertainty_m or np.inf)
        first_origin_ns = (
            min(s.solution.origin_time_ns or 0 for s in incident.shots)
            if incident.shots
            else detections[0].arrival_time_ns
        )
        cov = best.covariance_m2 if best is not None else None
        return wire.Incident(
            incident_id=incident.incident_id,
            label=wire.Label(incident.label),
            score=max(d.score for d in detections),
            origin_time_ns=max(first_origin_ns, 0),
            position=wire.Position(x_m=best.position_m[0], y_m=best.position_m[1], z_m=best.position_m[2])
            if best is not None and best.position_m is not None
            else None,
            uncertainty_m=best.uncertainty_m if best is not None else None,
            covariance_m2=[float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])] if cov is not None else None,
            detection_ids=[d.detection_id for d in detections],
            sensor_ids=sorted({d.sensor_id for d in detections}),
            created_at_ns=incident.created_at_ns,
            n_shots=max(1, len(incident.shots)),
        )


__all__ = ["IncidentBuilder", "arrival_of"]
