"""The simulated city's detections through the fusion node's incident builder and false-alarm policy.

:func:`fuse` replays the detections of a :class:`~sed.bench.city.City` in the order they
reached the node, in process, as the fusion node does (:mod:`sed.fusion.policy` shows the
call sequence): each detection is added to an :class:`~sed.fusion.incidents.IncidentBuilder`
and noted by a :class:`~sed.fusion.policy.FalseAlarmPolicy`, the builder is polled every
:data:`POLL_INTERVAL_S` while detections wait for their peers, and every incident update
gets its priority. Every pole's position is noted as its heartbeats would (every
:data:`HEARTBEAT_INTERVAL_S`). Run once per policy on the same detections.

:func:`score` compares the incidents with the scripted events. **The matching rule**: an
incident *matches* a scripted event of its class when

- it is located: its origin time is within :data:`MATCH_TIME_S` of the emission and its
  position within :data:`MATCH_DISTANCE_M` of the source (a sound placed farther away is
  a false incident, even if the event caused it);
- it is not located: one of its detections comes from a pole that heard the event and
  arrived between :data:`MATCH_SLACK_S` before the sound reached that pole and
  :data:`MATCH_SLACK_S` after the sound ended there.

Every other incident is *false*. A scripted event is *alerted* when an incident of
priority ``alert`` matches it; its delay runs from the sound reaching the first pole to the
incident becoming an alert. A false incident's *cause* is the loudest sound playing at the
pole of its best-scoring detection within :data:`MATCH_SLACK_S` of that detection's arrival
time (a background's manifest subclass, ``scripted <class>`` for another class's scripted
event, or ``noise`` when none played).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import msgspec

from sed import wire
from sed.bench.city import City, Sound
from sed.config import FusionSection, SiteSection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.policy import EventKind, FalseAlarmPolicy, PolicyEvent, Priority
from sed.units import NS_PER_S

#: How often the builder is polled while detections wait, s (the node polls every few ms;
#: this only rounds the delays to alert up by at most this much).
POLL_INTERVAL_S = 0.1
#: Every pole's position is noted this often, as its heartbeats would, s.
HEARTBEAT_INTERVAL_S = 10.0
#: After the last detection the builder is polled this much longer, so every incident is out, s.
DRAIN_S = 60.0
#: The matching rule (see the module docstring): s, m and s.
MATCH_TIME_S, MATCH_DISTANCE_M, MATCH_SLACK_S = 3.0, 100.0, 0.5
#: The rule in one sentence, for reports.
MATCHING_RULE = (
    f"An incident matches a scripted event of its class when, located, its origin time is within {MATCH_TIME_S:g} s "
    f"of the emission and its position within {MATCH_DISTANCE_M:g} m of the source, or, unlocated, one of its "
    f"detections comes from a pole that heard the event, between {MATCH_SLACK_S:g} s before the sound reached that "
    f"pole and {MATCH_SLACK_S:g} s after it ended there; every other incident is false. A false alert's cause is the "
    f"loudest sound playing at the pole of its best detection within {MATCH_SLACK_S:g} s of its arrival time."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Heard:
    """A detection as the fusion node received it (``received_at_ns``: UTC of its arrival)."""

    detection: wire.Detection
    received_at_ns: int


@dataclasses.dataclass(kw_only=True)
class IncidentRecord:
    """An incident's latest update, when it was first seen, and when it first became an alert."""

    incident: wire.Incident
    first_seen_ns: int
    first_priority: Priority
    alerted_at_ns: int | None = None

    @property
    def priority(self) -> Priority:
        return self.incident.priority


@dataclasses.dataclass(kw_only=True)
class FusionRun:
    policy_enabled: bool
    incidents: dict[str, IncidentRecord]
    transitions: list[PolicyEvent]
    noisy_sensors: dict[str, frozenset[wire.Label]]


def fuse(heard: Sequence[Heard], city: City, *, fusion: FusionSection, site: SiteSection, start_ns: int) -> FusionRun:
    """Replay ``heard`` through a builder and a policy configured by ``fusion``; see the module docstring."""
    builder = IncidentBuilder(fusion, temperature_c=site.temperature_c, site_radius_m=site.radius_m)
    policy = FalseAlarmPolicy(fusion.policy)
    queue = sorted(heard, key=lambda h: h.received_at_ns)
    step_ns, heartbeat_ns = round(POLL_INTERVAL_S * NS_PER_S), round(HEARTBEAT_INTERVAL_S * NS_PER_S)
    end_ns = max([start_ns + round(city.duration_s * NS_PER_S)] + [h.received_at_ns for h in queue])
    end_ns += round(DRAIN_S * NS_PER_S)
    records: dict[str, IncidentRecord] = {}
    transitions: list[PolicyEvent] = []
    noted_ns: int | None = None
    now_ns, i = start_ns, 0
    while now_ns <= end_ns:
        if noted_ns is None or now_ns - noted_ns >= heartbeat_ns:
            for pole in city.poles:
                builder.note_position(pole.sensor_id, pole.position_m, heard_at_ns=now_ns)
            noted_ns = now_ns
        while i < len(queue) and queue[i].received_at_ns <= now_ns:
            detection = queue[i].detection
            builder.add(detection, received_at_ns=queue[i].received_at_ns)
            policy.note_detection(detection.sensor_id, detection.label, queue[i].received_at_ns)
            i += 1
        for incident in builder.poll(now_ns):
            decision = policy.decide(incident, now_ns)
            incident = msgspec.structs.replace(incident, priority=decision.priority)
            record = records.get(incident.incident_id)
            if record is None:
                record = records[incident.incident_id] = IncidentRecord(
                    incident=incident, first_seen_ns=now_ns, first_priority=decision.priority
                )
            record.incident = incident
            if decision.priority is Priority.ALERT and record.alerted_at_ns is None:
                record.alerted_at_ns = now_ns
        policy.advance(now_ns)
        transitions.extend(policy.take_events())
        now_ns += step_ns
        if builder.n_pending == 0:
            # Nothing waits: no poll can change anything before the next arrival (or heartbeat).
            next_ns = queue[i].received_at_ns if i < len(queue) else end_ns
            now_ns = max(now_ns, min(next_ns, noted_ns + heartbeat_ns))
    return FusionRun(
        policy_enabled=fusion.policy.enabled,
        incidents=records,
        transitions=transitions,
        noisy_sensors=policy.noisy_sensors(),
    )


def _seconds(time_ns: int, start_ns: int) -> float:
    return (time_ns - start_ns) / NS_PER_S


class _Matcher:
    def __init__(self, city: City, heard: Sequence[Heard], *, start_ns: int) -> None:
        self.city = city
        self.start_ns = start_ns
        self.detections = {h.detection.detection_id: h.detection for h in heard}
        self.pole_of = {pole.sensor_id: k for k, pole in enumerate(city.poles)}
        self.events = city.scripted()
        self.arrivals = {e.index: {c.pole: c.arrival_time_s for c in city.heard(e.index)} for e in self.events}

    def matches(self, incident: wire.Incident, event: Sound) -> bool:
        if str(incident.label) != event.label:
            return False
        if incident.position is not None:
            p = incident.position
            return (
                abs(_seconds(incident.origin_time_ns, self.start_ns) - event.emission_time_s) <= MATCH_TIME_S
                and math.dist((p.x_m, p.y_m), event.position_m[:2]) <= MATCH_DISTANCE_M
            )
        arrivals = self.arrivals[event.index]
        for detection_id in incident.detection_ids:
            detection = self.detections.get(detection_id)
            pole = None if detection is None else self.pole_of.get(detection.sensor_id)
            if detection is None or pole not in arrivals:
                continue
            t = _seconds(detection.arrival_time_ns, self.start_ns)
            if arrivals[pole] - MATCH_SLACK_S <= t <= arrivals[pole] + event.duration_s + MATCH_SLACK_S:
                return True
        return False

    def cause(self, incident: wire.Incident) -> str:
        found = [self.detections[d] for d in incident.detection_ids if d in self.detections]
        if not found:
            return "noise"
        best = max(found, key=lambda d: d.score)
        playing = self.city.at_pole(
            self.pole_of[best.sensor_id], _seconds(best.arrival_time_ns, self.start_ns), slack_s=MATCH_SLACK_S
        )
        if not playing:
            return "noise"
        sound = self.city.sounds[playing[0].sound]
        return sound.subclass if sound.kind == "background" else f"scripted {sound.label}"


def score(run: FusionRun, city: City, heard: Sequence[Heard], *, start_ns: int) -> dict[str, Any]:
    """The figures of one run: incidents by priority, false ones and their causes, each event's outcome."""
    matcher = _Matcher(city, heard, start_ns=start_ns)
    sensor_hours = len(city.poles) * city.duration_s / 3600
    by_priority: collections.Counter[str] = collections.Counter()
    by_label: dict[str, collections.Counter[str]] = {str(label): collections.Counter() for label in wire.Label}
    false_by_priority: collections.Counter[str] = collections.Counter()
    false_alerts: list[dict[str, Any]] = []
    matched: dict[int, list[IncidentRecord]] = {e.index: [] for e in matcher.events}
    for record in sorted(run.incidents.values(), key=lambda r: r.first_seen_ns):
        incident = record.incident
        by_priority[str(record.priority)] += 1
        by_label[str(incident.label)][str(record.priority)] += 1
        events = [e for e in matcher.events if matcher.matches(incident, e)]
        for event in events:
            matched[event.index].append(record)
        if events:
            continue
        false_by_priority[str(record.priority)] += 1
        if record.priority is Priority.ALERT:
            false_alerts.append(
                {
                    "time_s": round(_seconds(record.first_seen_ns, start_ns), 2),
                    "label": str(incident.label),
                    "score": round(incident.score, 3),
                    "sensor_ids": sorted(set(incident.sensor_ids)),
                    "located": incident.position is not None,
                    "cause": matcher.cause(incident),
                }
            )
    flagged: dict[str, set[str]] = {}
    for t in run.transitions:
        if t.kind is EventKind.SENSOR_NOISY and t.sensor_id is not None:
            flagged.setdefault(t.sensor_id, set()).add(str(t.label))
    scripted = [_outcome(event, matched[event.index], matcher, start_ns=start_ns) for event in matcher.events]
    return {
        "policy_enabled": run.policy_enabled,
        "incidents": sum(by_priority.values()),
        "by_priority": {str(p): by_priority[str(p)] for p in Priority},
        "by_label": {label: {str(p): counts[str(p)] for p in Priority} for label, counts in by_label.items()},
        "false_by_priority": {str(p): false_by_priority[str(p)] for p in Priority},
        "false_alerts_per_100_sensor_hours": 100 * len(false_alerts) / sensor_hours,
        "false_alerts_by_cause": dict(collections.Counter(a["cause"] for a in false_alerts).most_common()),
        "false_alerts_by_label": dict(collections.Counter(a["label"] for a in false_alerts).most_common()),
        "false_alerts": false_alerts,
        "scripted_events": scripted,
        "all_scripted_alerted": all(e["alerted"] for e in scripted),
        "transitions": [
            {"time_s": round(_seconds(t.at_ns, start_ns), 2), "event": t.describe()} for t in run.transitions
        ],
        "noisy_poles_at_end": {
            sensor: sorted(str(label) for label in labels) for sensor, labels in sorted(run.noisy_sensors.items())
        },
        "noisy_poles_flagged": {sensor: sorted(labels) for sensor, labels in sorted(flagged.items())},
    }


def _outcome(event: Sound, records: list[IncidentRecord], matcher: _Matcher, *, start_ns: int) -> dict[str, Any]:
    arrivals = matcher.arrivals[event.index]
    nearest = min(matcher.city.heard(event.index), key=lambda c: c.distance_m, default=None)
    # The loudest other sound at the nearest pole while the event played there: what masks it.
    masker = None
    if nearest is not None:
        half_s = event.duration_s / 2
        playing = matcher.city.at_pole(nearest.pole, nearest.arrival_time_s + half_s, slack_s=half_s)
        masker = next((c for c in playing if c.sound != event.index), None)
    first_arrival_s = min(arrivals.values(), default=math.nan)
    alert_times = [r.alerted_at_ns for r in records if r.alerted_at_ns is not None]
    rank = {Priority.ALERT: 0, Priority.UNCONFIRMED: 1, Priority.SUPPRESSED: 2}
    best = min((r.priority for r in records), key=rank.__getitem__, default=None)
    return {
        "index": event.index,
        "label": event.label,
        "clip": event.clip,
        "emission_time_s": round(event.emission_time_s, 3),
        "position_m": [round(v, 1) for v in event.position_m],
        "poles_in_range": len(arrivals),
        "nearest_pole_m": None if nearest is None else round(nearest.distance_m, 1),
        "nearest_pole_peak_dbfs": None if nearest is None else round(nearest.peak_dbfs, 1),
        "loudest_other_there_dbfs": None if masker is None else round(masker.peak_dbfs, 1),
        "incidents": len(records),
        "best_priority": None if best is None else str(best),
        "alerted": bool(alert_times),
        "delay_to_alert_s": (round(_seconds(min(alert_times), start_ns) - first_arrival_s, 2) if alert_times else None),
    }


__all__ = ["FusionRun", "Heard", "IncidentRecord", "fuse", "score"]
