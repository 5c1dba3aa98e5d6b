"""Incident life cycle: detections in, located incidents out.

Detections wait ``association_wait_s`` for their peers from other sensors, then are
associated (:func:`~sed.fusion.associate.associate`) into shots. A shot joins an open
incident of the same class that is close in time and space (several rounds become one
incident with ``n_shots`` > 1); a late detection that fits an existing shot is added to it
and the shot is solved again. Detections that no shot explains become an incident
without a position (the sensors that heard it are the region) once they are too old to
still be joined: the operator hears about a scream one pole caught, but no point is
invented.

How long a lone detection waits for its peers is bounded by the sound's transit across
the sensors *heard recently* (a detection or a heartbeat within ``position_max_age_s``),
capped at twice the site radius: one detection from a pole whose position was typed
wrong, or a pole taken down, cannot make every later single-pole alert wait for hours.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import uuid

import numpy as np

from sed import wire
from sed.config import FusionSection
from sed.errors import WireError
from sed.fusion.associate import Group, associate
from sed.fusion.locate import Arrival, Solution, SolveStatus, locate
from sed.units import NS_PER_S, speed_of_sound_m_per_s


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
    site_radius_m : float > 0, optional
        Sensors stand within this distance of the site origin: caps the wait for peers at
        the sound's transit across the site's diameter. ``None``: no cap but the age-out.
    """

    def __init__(self, config: FusionSection, *, temperature_c: float, site_radius_m: float | None = None) -> None:
        self.config = config
        self.temperature_c = temperature_c
        self._wait_ns = int(config.association_wait_s * NS_PER_S)
        c = speed_of_sound_m_per_s(temperature_c)
        self._transit_cap_ns = None if site_radius_m is None else int(2 * site_radius_m / c * NS_PER_S)
        # Longest time a sound takes across the sensors heard recently: bounds how long to wait for peers.
        self._transit_ns = 0
        self._baseline_m = 0.0
        self._max_age_ns = int(config.position_max_age_s * NS_PER_S)
        self._heard: dict[str, tuple[tuple[float, float, float], int]] = {}  # sensor -> (position, heard at)
        self._tolerance_s = config.max_timing_error_ms / 1000
        self._pending: list[_Pending] = []
        self._last_associated: frozenset[str] = frozenset()
        self._open: list[_Open] = []

    @property
    def n_pending(self) -> int:
        """Detections waiting for their peers (the fusion node's backlog)."""
        return len(self._pending)

    @property
    def transit_ns(self) -> int:
        """The current bound on a sound's transit across the sensors heard recently, ns."""
        return self._transit_ns

    def admit(self, detection: wire.Detection) -> Arrival:
        """The detection's arrival if the builder can take it, without taking it.

        The fusion node asks before it stores a detection, so that a detection is never
        stored (and acknowledged) and then lost to an error here.

        Raises
        ------
        WireError
            Naming the detection, the sensor, the field and the value, when a value is
            not finite or outside what the arithmetic of association can hold.
        """
        where = f"detection {detection.detection_id!r} from sensor {detection.sensor_id!r}"
        p = detection.position
        for field, value, bound in (
            ("position.x_m", p.x_m, wire.MAX_HORIZONTAL_M),
            ("position.y_m", p.y_m, wire.MAX_HORIZONTAL_M),
            ("position.z_m", p.z_m, wire.MAX_VERTICAL_M),
            ("score", detection.score, 1.0),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and abs(value) <= bound):
                raise WireError(f"{where}: {field} = {value!r}; expected a finite number within ±{bound:g}")
        for field, value in (
            ("arrival_time_ns", detection.arrival_time_ns),
            ("arrival_uncertainty_ns", detection.arrival_uncertainty_ns),
        ):
            if not (isinstance(value, int) and 0 <= value <= wire.INT64_MAX):
                raise WireError(f"{where}: {field} = {value!r}; expected an integer in [0, 2**63)")
        if detection.label not in set(wire.Label):
            raise WireError(f"{where}: label = {detection.label!r}; expected one of {sorted(wire.Label)}")
        return arrival_of(detection)

    def add(self, detection: wire.Detection, *, received_at_ns: int) -> None:
        """Queue a new detection; one the builder already holds (same id) is ignored.

        Raises
        ------
        WireError
            As :meth:`admit`, with nothing changed.
        """
        arrival = self.admit(detection)
        if self._holds(detection.detection_id):
            return
        self.note_position(arrival.sensor_id, arrival.position_m, heard_at_ns=received_at_ns)
        self._pending.append(_Pending(arrival, detection, received_at_ns))

    def note_position(self, sensor_id: str, position_m: tuple[float, float, float], *, heard_at_ns: int) -> None:
        """A sensor spoke (a detection, or a heartbeat with its position) from ``position_m``."""
        if not all(math.isfinite(v) for v in position_m):
            return  # no position to count: the detection itself was refused by admit
        previous = self._heard.get(sensor_id)
        self._heard[sensor_id] = (position_m, heard_at_ns)
        if previous is None:
            self._update_transit(added=position_m)
        elif previous[0] != position_m:
            self._update_transit()

    def poll(self, now_ns: int) -> list[wire.Incident]:
        """Associate what has waited long enough; return every incident created or changed."""
        changed: dict[str, _Open] = {}
        self._age_out(now_ns)
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

    def evict_failing(self, now_ns: int) -> list[tuple[wire.Detection, int]]:
        """After :meth:`poll` raised: remove the pending detections that make it fail.

        Each pending detection is tried alone on a copy of the builder, polled until it
        has expired, so every step it can reach runs. Those that fail alone are removed;
        if none does (only together, or an open incident fails), every pending detection
        is removed and the open incidents are forgotten (they are stored already), so the
        next poll starts afresh. The rest of the state is kept.

        Returns
        -------
        list of (detection, received_at_ns)
            What was removed, for the fusion node to quarantine.
        """
        suspects = []
        for pending in self._pending:
            trial = copy.deepcopy(self)
            trial._pending = [p for p in trial._pending if p.detection.detection_id == pending.detection.detection_id]
            trial._last_associated = frozenset()
            try:
                trial.poll(now_ns)
                trial.poll(max(now_ns, pending.received_at_ns + self._wait_ns + self._transit_ns))
            except Exception:
                suspects.append(pending)
        if not suspects:
            return self.clear()
        evicted = {id(p) for p in suspects}
        self._pending = [p for p in self._pending if id(p) not in evicted]
        self._last_associated = frozenset()
        return [(p.detection, p.received_at_ns) for p in suspects]

    def clear(self) -> list[tuple[wire.Detection, int]]:
        """Forget every pending detection and open incident (stored already); returns what was pending."""
        pending = [(p.detection, p.received_at_ns) for p in self._pending]
        self._pending, self._open, self._last_associated = [], [], frozenset()
        return pending

    # ----------------------------------------------------------------- steps

    def _holds(self, detection_id: str) -> bool:
        return any(p.detection.detection_id == detection_id for p in self._pending) or any(
            detection_id in o.detections for o in self._open
        )

    def _age_out(self, now_ns: int) -> None:
        """Forget the positions of sensors not heard for ``position_max_age_s``."""
        stale = [s for s, (_, heard_ns) in self._heard.items() if now_ns - heard_ns > self._max_age_ns]
        if stale:
            for sensor_id in stale:
                del self._heard[sensor_id]
            self._update_transit()

    def _update_transit(self, *, added: tuple[float, float, float] | None = None) -> None:
        """The widest pair of recently heard sensors, as a sound's travel time, capped.

        A sensor heard for the first time can only widen the widest pair: then only its
        distances to the others are computed (the full pairwise maximum is quadratic).
        """
        positions = np.array([position for position, _ in self._heard.values()], dtype=np.float64).reshape(-1, 3)
        if added is not None:
            widest_m = float(np.max(np.linalg.norm(positions - np.asarray(added), axis=-1), initial=0.0))
            self._baseline_m = max(self._baseline_m, widest_m)
        else:
            pairwise = np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)
            self._baseline_m = float(np.max(pairwise, initial=0.0))
        transit_s = self._baseline_m / speed_of_sound_m_per_s(self.temperature_c)
        transit_ns = int(transit_s * NS_PER_S) if math.isfinite(transit_s) and transit_s < 2**62 / NS_PER_S else 2**62
        self._transit_ns = transit_ns if self._transit_cap_ns is None else min(transit_ns, self._transit_cap_ns)

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
