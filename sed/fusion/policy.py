"""The false-alarm policy: which incidents alert operators and which are only shown.

Every incident is stored and listed; its ``priority`` says how it reaches operators:

- ``alert``: webhooks fire and the dashboard sounds the alert;
- ``unconfirmed``: fewer poles than ``min_sensors`` heard it and its best detection scored
  below ``confirm_score``, or one of its sensors is flagged noisy for the class. It is shown
  muted and upgraded to ``alert`` (an incident update, like any other) as soon as more
  poles join it or a detection of higher confidence arrives;
- ``suppressed``: more than ``storm_incidents`` incidents of its class started within
  ``storm_window_s`` across the site (fireworks at midnight). The storm lasts until at
  most half that many started within the window; an incident that started during it
  stays suppressed.

A sensor with more than ``sensor_max_per_hour`` detections of a class within the last
hour (sliding) is flagged ``noisy`` for that class until it has fewer than half as many;
its detections still count and are stored, but an uncorroborated incident it heard is not
an alert. Corroboration counts *poles*: the streams of one multi-microphone pole (``pole-3.0``,
``pole-3.1``) hearing one sound are one witness, not two.

Priorities only rise: an alert never becomes unconfirmed (operators have seen it), and a
suppressed incident stays suppressed. Each class has its own settings
(:class:`~sed.config.ClassPolicy`, ``[fusion.policy.<class>]``).

The class is pure: no I/O, no clock of its own (every call takes ``now_ns``), so the
fusion node (:class:`~sed.fusion.intake.Intake`), tests and a simulated city drive it
alike. The call sequence, in process::

    builder = IncidentBuilder(config.fusion, temperature_c=15.0)
    policy = FalseAlarmPolicy(config.fusion.policy)
    for detection, now_ns in arrivals:
        builder.add(detection, received_at_ns=now_ns)
        policy.note_detection(detection.sensor_id, detection.label, now_ns)
        for incident in builder.poll(now_ns):
            incident = policy.apply(incident, now_ns)  # the same incident with its priority
            ...  # store it; alert operators only if incident.priority is IncidentPriority.ALERT

Transitions (a storm starts or ends, a sensor is flagged noisy or cleared) are queued as
:class:`PolicyEvent` s for the caller to log, count and store (:meth:`take_events`);
:meth:`advance` lets storms end and flags clear while no incident arrives.

Clock jumps: windows are pruned by ``now_ns``; a clock that steps back keeps the newer
entries counted until real time passes them, so a step back can only lengthen a storm
or a noisy flag, never hide one.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Iterable

import msgspec

from sed import wire
from sed.config import ClassPolicy, PolicySection

Priority = wire.IncidentPriority

#: The sliding window of a sensor's detection rate, ns.
SENSOR_WINDOW_NS = 3600 * 10**9
#: How long an incident's priority is remembered after its last update, ns: an update that
#: comes later (the builder forgets open incidents within seconds) would count as a new start.
INCIDENT_MEMORY_NS = 3600 * 10**9
#: How often the sensors' rates are swept for flags to clear, ns: the node polls every few
#: milliseconds, and a flag cleared a second late costs nothing.
SWEEP_INTERVAL_NS = 10**9
#: Most transitions kept for :meth:`FalseAlarmPolicy.take_events` when nobody takes them.
MAX_EVENTS = 10_000


class EventKind(enum.StrEnum):
    STORM_STARTED = "storm_started"
    STORM_ENDED = "storm_ended"
    SENSOR_NOISY = "sensor_noisy"
    SENSOR_CLEARED = "sensor_cleared"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyEvent:
    """A transition of the policy's state.

    ``count`` is the incidents of the class started within the storm window (storms) or
    the sensor's detections of the class within the last hour (noisy flags); ``limit`` is
    the setting it was compared with (``storm_incidents``, ``sensor_max_per_hour``).
    """

    kind: EventKind
    label: wire.Label
    at_ns: int
    count: int
    limit: int
    sensor_id: str | None = None

    def describe(self) -> str:
        """The event as one log line, naming the setting it crossed."""
        key = f"fusion.policy.{self.label}"
        if self.kind is EventKind.STORM_STARTED:
            return (
                f"{self.label} storm: {self.count} incidents started within the window "
                f"({key}.storm_incidents = {self.limit}); new ones are suppressed"
            )
        if self.kind is EventKind.STORM_ENDED:
            return f"{self.label} storm over: {self.count} incidents within the window; new ones may alert again"
        if self.kind is EventKind.SENSOR_NOISY:
            return (
                f"sensor {self.sensor_id!r} noisy for {self.label}: {self.count} detections in the last hour "
                f"({key}.sensor_max_per_hour = {self.limit}); its uncorroborated incidents are not alerts"
            )
        return f"sensor {self.sensor_id!r} no longer noisy for {self.label}: {self.count} detections in the last hour"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """An incident's priority now, and what it was before this update (``None``: first seen)."""

    priority: Priority
    previous: Priority | None

    @property
    def upgraded(self) -> bool:
        return self.previous is not None and self.previous is not self.priority


@dataclasses.dataclass
class _Seen:
    priority: Priority
    last_ns: int


class _Window:
    """Times of events within a sliding window, exact up to ``limit + 1`` events.

    Only the newest ``limit + 1`` times are kept: that many within the window already
    says "above the limit", and below it every time still in the window is kept.
    """

    def __init__(self, *, window_ns: int, limit: int) -> None:
        self.window_ns = window_ns
        self._times: collections.deque[int] = collections.deque(maxlen=limit + 1)

    def add(self, at_ns: int) -> None:
        self._times.append(at_ns)

    def count(self, now_ns: int) -> int:
        while self._times and self._times[0] <= now_ns - self.window_ns:
            self._times.popleft()
        return len(self._times)


class FalseAlarmPolicy:
    """Classifies incidents as ``alert``, ``unconfirmed`` or ``suppressed``; see the module docstring.

    Parameters
    ----------
    config : PolicySection, optional
        ``[fusion.policy]``; default: the defaults of every class.
    """

    def __init__(self, config: PolicySection | None = None) -> None:
        self.config = config if config is not None else PolicySection()
        self._rates: dict[tuple[str, wire.Label], _Window] = {}  # (sensor id, class) -> detection times
        self._noisy: set[tuple[str, wire.Label]] = set()
        self._pole_of: dict[str, str] = {}  # stream id -> the pole (key) it belongs to
        self._starts = {
            label: _Window(
                window_ns=int(self.config.of(label).storm_window_s * 1e9), limit=self.config.of(label).storm_incidents
            )
            for label in wire.Label
        }
        self._storms: set[wire.Label] = set()
        self._incidents: collections.OrderedDict[str, _Seen] = collections.OrderedDict()  # oldest update first
        self._events: collections.deque[PolicyEvent] = collections.deque(maxlen=MAX_EVENTS)
        self._swept_ns: int | None = None

    # ----------------------------------------------------------------- inputs

    def note_detection(
        self, sensor_id: str, label: wire.Label | str, now_ns: int, *, pole_id: str | None = None
    ) -> None:
        """A sensor reported a detection of ``label`` (every stored one, corroborated or not).

        ``pole_id`` is the sensor (key) that sent it when ``sensor_id`` is one of its
        streams (``pole-3.1``): streams of one pole do not corroborate each other.
        """
        label = wire.Label(label)
        if pole_id is not None and pole_id != sensor_id:
            self._pole_of[sensor_id] = pole_id
        key = (sensor_id, label)
        limit = self.config.of(label).sensor_max_per_hour
        window = self._rates.get(key)
        if window is None:
            window = self._rates[key] = _Window(window_ns=SENSOR_WINDOW_NS, limit=limit)
        window.add(now_ns)
        count = window.count(now_ns)
        if key not in self._noisy and count > limit:
            self._noisy.add(key)
            self._event(EventKind.SENSOR_NOISY, label, now_ns, count=count, limit=limit, sensor_id=sensor_id)

    def advance(self, now_ns: int) -> None:
        """Let time pass: storms end, noisy flags clear and old incidents are forgotten when due."""
        for label in list(self._storms):
            policy = self.config.of(label)
            count = self._starts[label].count(now_ns)
            if count <= policy.storm_incidents / 2:
                self._storms.discard(label)
                self._event(EventKind.STORM_ENDED, label, now_ns, count=count, limit=policy.storm_incidents)
        if self._swept_ns is None or abs(now_ns - self._swept_ns) >= SWEEP_INTERVAL_NS:
            self._swept_ns = now_ns
            self._sweep_rates(now_ns)
        while self._incidents:
            incident_id, seen = next(iter(self._incidents.items()))
            if now_ns - seen.last_ns < INCIDENT_MEMORY_NS:
                break
            del self._incidents[incident_id]

    def _sweep_rates(self, now_ns: int) -> None:
        for key, window in list(self._rates.items()):
            count = window.count(now_ns)
            sensor_id, label = key
            limit = self.config.of(label).sensor_max_per_hour
            if key in self._noisy and count < limit / 2:
                self._noisy.discard(key)
                self._event(EventKind.SENSOR_CLEARED, label, now_ns, count=count, limit=limit, sensor_id=sensor_id)
            if count == 0:
                del self._rates[key]  # a sensor gone quiet costs nothing

    # ----------------------------------------------------------------- decisions

    def classify(self, incident: wire.Incident, now_ns: int) -> Priority:
        """The priority of a created or updated incident (remembered for its later updates)."""
        return self.decide(incident, now_ns).priority

    def apply(self, incident: wire.Incident, now_ns: int) -> wire.Incident:
        """The incident with its :meth:`classify` priority."""
        return msgspec.structs.replace(incident, priority=self.classify(incident, now_ns))

    def decide(self, incident: wire.Incident, now_ns: int) -> Decision:
        """As :meth:`classify`, also saying whether the incident is new or was upgraded."""
        self.advance(now_ns)
        seen = self._incidents.get(incident.incident_id)
        if seen is None:
            priority = self._start(incident.label, now_ns)
            if priority is None:
                priority = self._judge(incident)
            self._incidents[incident.incident_id] = _Seen(priority=priority, last_ns=now_ns)
            return Decision(priority=priority, previous=None)
        previous = seen.priority
        if previous is Priority.UNCONFIRMED:
            seen.priority = self._judge(incident)
        seen.last_ns = now_ns
        self._incidents.move_to_end(incident.incident_id)
        return Decision(priority=seen.priority, previous=previous)

    def _start(self, label: wire.Label, now_ns: int) -> Priority | None:
        """Count a new incident of ``label``; ``suppressed`` during a storm, else ``None``."""
        if not self.config.enabled:
            return None
        policy = self.config.of(label)
        starts = self._starts[label]
        starts.add(now_ns)
        count = starts.count(now_ns)
        if label not in self._storms and count > policy.storm_incidents:
            self._storms.add(label)
            self._event(EventKind.STORM_STARTED, label, now_ns, count=count, limit=policy.storm_incidents)
        return Priority.SUPPRESSED if label in self._storms else None

    def _judge(self, incident: wire.Incident) -> Priority:
        """``alert`` or ``unconfirmed`` from the incident's poles, score and noisy sensors."""
        if not self.config.enabled:
            return Priority.ALERT
        label = wire.Label(incident.label)
        policy: ClassPolicy = self.config.of(label)
        poles = {self._pole_of.get(s, s) for s in incident.sensor_ids}
        if len(poles) >= policy.min_sensors:
            return Priority.ALERT
        if incident.score < policy.confirm_score or any((s, label) in self._noisy for s in incident.sensor_ids):
            return Priority.UNCONFIRMED
        return Priority.ALERT

    # ----------------------------------------------------------------- state

    def noisy_sensors(self) -> dict[str, frozenset[wire.Label]]:
        """Sensors flagged noisy, with the classes they are noisy for."""
        flagged: dict[str, set[wire.Label]] = {}
        for sensor_id, label in self._noisy:
            flagged.setdefault(sensor_id, set()).add(label)
        return {sensor_id: frozenset(labels) for sensor_id, labels in flagged.items()}

    def noisy_labels(self, sensor_id: str) -> frozenset[wire.Label]:
        """The classes one sensor is flagged noisy for (empty: none)."""
        return frozenset(label for s, label in self._noisy if s == sensor_id)

    def storms(self) -> frozenset[wire.Label]:
        """Classes in a storm now."""
        return frozenset(self._storms)

    def take_events(self) -> list[PolicyEvent]:
        """The transitions since the last call, oldest first (at most :data:`MAX_EVENTS`)."""
        events = list(self._events)
        self._events.clear()
        return events

    def seed(self, detections: Iterable[tuple[str, wire.Label | str, int]]) -> None:
        """Replay ``(sensor_id, label, received_at_ns)`` of stored detections, oldest first, so
        a restarted node keeps its sensors' rates (and noisy flags) of the last hour."""
        for sensor_id, label, received_at_ns in detections:
            self.note_detection(sensor_id, label, received_at_ns)

    def _event(
        self, kind: EventKind, label: wire.Label, at_ns: int, *, count: int, limit: int, sensor_id: str | None = None
    ) -> None:
        self._events.append(
            PolicyEvent(kind=kind, label=label, at_ns=at_ns, count=count, limit=limit, sensor_id=sensor_id)
        )


__all__ = ["Decision", "EventKind", "FalseAlarmPolicy", "PolicyEvent", "Priority"]
