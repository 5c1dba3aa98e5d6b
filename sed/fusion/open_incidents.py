"""The incident builder's working state, its view of a detection, and its incidents on the wire.

:class:`OpenIncident` is an incident the builder may still change (provisional ones and the
located and unlocated ones late detections may join), :class:`Pending` a detection waiting
for its peers, :class:`Shot` one located sound of an incident. :func:`admit` checks what
association can hold; :func:`to_wire` is what is committed and announced.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sed import wire
from sed.errors import WireError
from sed.fusion.associate import Group
from sed.fusion.locate import Arrival, Solution

Stage = wire.IncidentStage


@dataclasses.dataclass(eq=False)
class Shot:
    group: Group
    settle_ns: int  # every peer could have arrived by then: solve again with what joined
    dirty: bool = False


@dataclasses.dataclass(eq=False)
class OpenIncident:
    incident_id: str
    label: str
    created_at_ns: int
    stage: wire.IncidentStage = Stage.PROVISIONAL
    shots: list[Shot] = dataclasses.field(default_factory=list)
    detections: dict[str, wire.Detection] = dataclasses.field(default_factory=dict)
    pending: dict[str, Pending] = dataclasses.field(default_factory=dict)
    merged_into: str | None = None
    revision: int = -1
    last_activity_ns: int = 0


@dataclasses.dataclass(eq=False)
class Pending:
    arrival: Arrival
    detection: wire.Detection
    received_at_ns: int
    deadline_ns: int
    incident: OpenIncident
    timed: bool


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
        directness=detection.directness,
    )


def admit(detection: wire.Detection) -> Arrival:
    """The detection's arrival if association can hold it (a pure check: any thread may call it).

    Raises
    ------
    WireError
        Naming the detection, the sensor, the field and the value, when a value is not
        finite or outside what the arithmetic of association can hold.
    """
    where = f"detection {detection.detection_id!r} from sensor {detection.sensor_id!r}"
    p = detection.position
    for field, value, bound in (
        ("position.x_m", p.x_m, wire.MAX_HORIZONTAL_M),
        ("position.y_m", p.y_m, wire.MAX_HORIZONTAL_M),
        ("position.z_m", p.z_m, wire.MAX_VERTICAL_M),
        ("score", detection.score, 1.0),
        ("directness", detection.directness, wire.MAX_DIRECTNESS),
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


def to_wire(incident: OpenIncident) -> wire.Incident:
    """The incident as the wire, store and operators see it; each call is the next revision."""
    incident.revision += 1
    detections = sorted(incident.detections.values(), key=lambda d: d.arrival_time_ns)
    best: Solution | None = None
    if incident.shots:
        best = min((s.group.solution for s in incident.shots), key=lambda s: s.uncertainty_m or np.inf)
    first_origin_ns = (
        min(s.group.solution.origin_time_ns or 0 for s in incident.shots)
        if incident.shots
        else (detections[0].arrival_time_ns if detections else 0)
    )
    cov = best.covariance_m2 if best is not None else None
    return wire.Incident(
        incident_id=incident.incident_id,
        label=wire.Label(incident.label),
        score=max((d.score for d in detections), default=0.0),
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
        stage=incident.stage,
        merged_into=incident.merged_into,
        revision=incident.revision,
    )


__all__ = ["OpenIncident", "Pending", "Shot", "admit", "arrival_of", "to_wire"]
