"""The fusion node's association worker: the only thread that touches the incident builder.

The intake (:mod:`sed.fusion.intake`) stores and acknowledges detections and hands the new
ones over through an :class:`AssociationQueue`; :meth:`Associator.turn`, called about every
20 ms by the worker, adds what waits (gunshots first) to the builder, polls it, gives each
incident its priority (:mod:`sed.fusion.policy`: a failing policy never loses an incident,
it is committed as an alert), commits every changed incident in one transaction and returns
them for announcing, after the commit and once per change. When association fails, the
detections that make it fail are quarantined (they were acknowledged already: no reject) and
the rest go on waiting.

Nothing waits forever for the operator: a detection the sensor sends again that is stored but
held by no incident nor by the builder goes to association (the node may have stopped before
it did), and :meth:`Associator.resume` takes back, on start, the recent stored detections no
incident holds and the open incidents late detections may still join.

When association falls behind (:data:`OVERLOAD_WAIT_S`, :data:`OVERLOAD_ENTRIES`) the node
says so (``sed_fusion_overloaded``, one log line per transition, a health problem); nothing
is dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

import msgspec

from sed import wire
from sed.fusion.accounting import FusionMetrics, QuarantineReason, describe, keep_quarantined
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.policy import EventKind, FalseAlarmPolicy
from sed.store import Store
from sed.store.store import is_transient
from sed.units import NS_PER_S

log = logging.getLogger("sed.fusion")

#: How often incidents (and noisy flags) the database could not take are tried again, ns.
INCIDENT_RETRY_NS = 1_000_000_000
#: Most queued entries one turn adds to the builder before it polls (so polls keep their pace), entries.
MAX_TAKE_PER_TURN = 2000
#: Association is overloaded when the oldest waiting detection has waited longer than this, s …
OVERLOAD_WAIT_S = 1.0
#: … or when more than this many wait, entries.
OVERLOAD_ENTRIES = 20_000
#: It is no longer overloaded once the oldest has waited less than this fraction of the bounds.
OVERLOAD_CLEAR_FRACTION = 0.5


@dataclasses.dataclass(frozen=True, slots=True)
class Arrival:
    """A stored, acknowledged detection for association.

    ``resent``: it was stored before (this run or an earlier one) and no committed incident
    holds it; the builder ignores it if it holds it already (its ``add`` is idempotent).
    """

    detection: wire.Detection
    received_at_ns: int
    pole_id: str
    resent: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PolePosition:
    """A heartbeat's position: the pole still counts for the bound on a sound's wait."""

    sensor_id: str
    position_m: tuple[float, float, float]
    heard_at_ns: int


class AssociationQueue:
    """Thread-safe hand-over from the intake to the association worker; gunshots are taken first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._urgent: collections.deque[tuple[int, Arrival | PolePosition]] = collections.deque()
        self._other: collections.deque[tuple[int, Arrival | PolePosition]] = collections.deque()

    def put(self, items: list[Arrival | PolePosition], *, now_ns: int) -> None:
        if not items:
            return
        with self._lock:
            for item in items:
                urgent = isinstance(item, Arrival) and item.detection.label is wire.Label.GUNSHOT
                (self._urgent if urgent else self._other).append((now_ns, item))

    def take(self, max_items: int) -> list[Arrival | PolePosition]:
        """Up to ``max_items`` entries: gunshots first, each class in the order it came."""
        taken: list[Arrival | PolePosition] = []
        with self._lock:
            for queue in (self._urgent, self._other):
                while queue and len(taken) < max_items:
                    taken.append(queue.popleft()[1])
        return taken

    def __len__(self) -> int:
        return len(self._urgent) + len(self._other)

    def oldest_wait_s(self, now_ns: int) -> float:
        """How long the longest-waiting entry has waited, s (0 when empty)."""
        with self._lock:
            heads = [q[0][0] for q in (self._urgent, self._other) if q]
        return max(0.0, (now_ns - min(heads)) / NS_PER_S) if heads else 0.0


class Associator:
    """Association, priorities and incident commits of one fusion node (see the module docstring).

    Parameters
    ----------
    store : Store
    builder : IncidentBuilder
        Touched by this object only, so by the association worker's thread only.
    metrics : FusionMetrics
    policy : FalseAlarmPolicy
    queue : AssociationQueue
    """

    def __init__(
        self,
        *,
        store: Store,
        builder: IncidentBuilder,
        metrics: FusionMetrics,
        policy: FalseAlarmPolicy,
        queue: AssociationQueue,
    ) -> None:
        self.store = store
        self.builder = builder
        self.metrics = metrics
        self.policy = policy
        self.queue = queue
        self.overloaded = False
        self._flags_unsaved: set[str] = set()  # sensors whose noisy flag the database did not take yet
        self._flags_retry_at_ns = 0
        self._gauges_stale = True  # the policy may start with flags (replayed at start)
        self._unsaved: dict[str, wire.Incident] = {}  # incidents the database could not take yet
        self._retry_at_ns = 0

    # ----------------------------------------------------------------- start

    def resume(self, *, lookback_s: float, now_ns: int) -> None:
        """Take back what the node held when it stopped: open incidents and unassigned detections.

        The poles heard within ``lookback_s`` are noted where they stand. Incidents updated
        within it that operators have not closed go back to the builder with their detections
        (so late detections join them, not a second incident); then the stored detections
        received within it that no incident holds are queued again (the sensor will not resend
        them), each waiting afresh for its peers.
        """
        since_ns = now_ns - int(lookback_s * NS_PER_S)
        # The poles heard recently, where they stand: the first detections after a restart wait for
        # the whole neighbourhood of their pole, not only for the poles that happen to speak first.
        for sensor in self.store.list_sensors():
            if sensor.position is not None and sensor.last_seen_ns >= since_ns:
                p = sensor.position
                self.builder.note_position(sensor.sensor_id, (p.x_m, p.y_m, p.z_m), heard_at_ns=sensor.last_seen_ns)
        restored = 0
        for incident, detections in self.store.open_incidents(updated_since_ns=since_ns):
            try:
                self.builder.restore(incident, detections, now_ns=now_ns)
                restored += 1
            except Exception as exc:  # committed already: the operator has it, only late joins are lost
                log.warning("open incident %s not taken back: %s", incident.incident_id[:8], describe(exc))
        resumed = 0
        for stored in self.store.unassigned_detections(received_since_ns=since_ns):
            try:
                # It waits for its peers afresh: those the node had not stored yet are only now resent.
                self.builder.add(stored.detection, received_at_ns=max(stored.received_at_ns, now_ns))
            except Exception as exc:  # quarantined when it first came; it stays stored and unassigned
                log.warning("stored detection %r not resumed: %s", stored.detection.detection_id, describe(exc))
                continue
            resumed += 1
        if restored or resumed:
            log.info("took back %d open incidents and %d stored detections no incident holds yet", restored, resumed)

    # ----------------------------------------------------------------- each turn

    def turn(self, now_ns: int) -> list[wire.Incident]:
        """Add what waits to the builder, poll it and commit; the incidents committed. Never raises
        for anything a detection holds."""
        self._take(now_ns)
        incidents = self._poll(now_ns)
        incidents = [self._prioritise(incident, now_ns) for incident in incidents]
        self._policy_turn(now_ns)
        changed = {incident.incident_id: incident for incident in incidents}
        retried = self._unsaved if now_ns >= self._retry_at_ns else {}
        pending = retried | changed  # a newer version of an unsaved incident supersedes it
        self._unsaved = {k: v for k, v in self._unsaved.items() if k not in pending}
        return self._commit(list(pending.values()), now_ns)

    def check_overload(self, now_ns: int) -> str | None:
        """Update the backlog gauges and the overload flag (logged on each transition); the health
        problem to show while overloaded. Thread-safe: the intake calls it, never blocked by association."""
        entries = len(self.queue)
        behind_s = self.queue.oldest_wait_s(now_ns)
        self.metrics.backlog.set(entries)
        if not self.overloaded and (behind_s > OVERLOAD_WAIT_S or entries > OVERLOAD_ENTRIES):
            self.overloaded = True
            log.warning(
                "overloaded: association %.1f s behind, %d detections waiting (none dropped; gunshots first)",
                behind_s,
                entries,
            )
        elif self.overloaded and (
            behind_s < OVERLOAD_CLEAR_FRACTION * OVERLOAD_WAIT_S
            and entries < OVERLOAD_CLEAR_FRACTION * OVERLOAD_ENTRIES
        ):
            self.overloaded = False
            log.info("no longer overloaded: association %.1f s behind, %d detections waiting", behind_s, entries)
        self.metrics.overloaded.set(int(self.overloaded))
        return f"overloaded: association {behind_s:.1f} s behind" if self.overloaded else None

    def _take(self, now_ns: int) -> None:
        for item in self.queue.take(MAX_TAKE_PER_TURN):
            if isinstance(item, PolePosition):
                try:
                    self.builder.note_position(item.sensor_id, item.position_m, heard_at_ns=item.heard_at_ns)
                except Exception as exc:
                    log.warning("sensor %r: heartbeat position not noted: %s", item.sensor_id, describe(exc))
                continue
            detection = item.detection
            try:  # a resend the builder holds already is ignored by it: the resend only lost its ack
                self.builder.add(detection, received_at_ns=item.received_at_ns)
            except Exception as exc:  # acked and stored already: quarantined for an admin, not rejected
                keep_quarantined(
                    store=self.store,
                    metrics=self.metrics,
                    sensor_id=item.pole_id,
                    message=detection,
                    reason=QuarantineReason.ASSOCIATION,
                    cause=exc,
                    received_at_ns=item.received_at_ns,
                )
                continue
            if not item.resent:  # a resend was counted when it first came (or replayed at start)
                self._note(detection, item.pole_id, item.received_at_ns)

    def _poll(self, now_ns: int) -> list[wire.Incident]:
        try:
            incidents = self.builder.poll(now_ns)
        except Exception as exc:
            log.error("associating detections failed: %s", describe(exc))
            log.debug("associating detections failed", exc_info=True)
            try:
                evicted = self.builder.evict_failing(now_ns)
            except Exception as trial_exc:  # even the search failed: start afresh rather than fail every poll
                log.error("finding the detections association fails on failed: %s", describe(trial_exc))
                evicted = self.builder.clear()
            self._quarantine(evicted, exc)
            return []
        self._quarantine(self.builder.take_failed(), "associating it failed (see the log)")  # a poll that went on
        return incidents

    def _quarantine(self, detections: list[tuple[wire.Detection, int]], cause: BaseException | str) -> None:
        """Detections association failed on: acked and stored already, so kept for an admin, not rejected."""
        for detection, received_at_ns in detections:
            keep_quarantined(
                store=self.store,
                metrics=self.metrics,
                sensor_id=detection.sensor_id,
                message=detection,
                reason=QuarantineReason.ASSOCIATION,
                cause=cause,
                received_at_ns=received_at_ns,
            )

    def _commit(self, incidents: list[wire.Incident], now_ns: int) -> list[wire.Incident]:
        """Commit in one transaction; on a refused value, one by one so only that incident is dropped."""
        if not incidents:
            return []
        if len(incidents) > 1:
            try:
                with self.store.batch():
                    updated_at_ns = time.time_ns()
                    for incident in incidents:
                        self.store.save_incident(incident, updated_at_ns=updated_at_ns)
                return incidents
            except Exception as exc:
                if is_transient(exc):
                    self._failed(incidents, exc, now_ns, transient=True)
                    return []
                log.debug("committing %d incidents at once failed; one by one: %s", len(incidents), describe(exc))
        committed = []
        for incident in incidents:
            try:
                self.store.save_incident(incident, updated_at_ns=time.time_ns())
            except Exception as exc:
                self._failed([incident], exc, now_ns, transient=is_transient(exc))
                continue
            committed.append(incident)
        return committed

    def _failed(self, incidents: list[wire.Incident], exc: BaseException, now_ns: int, *, transient: bool) -> None:
        for incident in incidents:
            self.metrics.incident_errors.labels(transient=str(transient).lower()).inc()
            log.error(
                "incident %s not stored (%s): %s",
                incident.incident_id[:8],
                "retried at the next poll" if transient else "dropped",
                describe(exc),
            )
            if transient:
                self._unsaved[incident.incident_id] = incident
                self._retry_at_ns = now_ns + INCIDENT_RETRY_NS

    # ----------------------------------------------------------------- false-alarm policy

    def _note(self, detection: wire.Detection, pole_id: str, received_at_ns: int) -> None:
        # Stored and queued already: a failure here must not lose the detection.
        try:
            self.policy.note_detection(detection.sensor_id, detection.label, received_at_ns, pole_id=pole_id)
        except Exception as exc:
            log.error("detection %r not counted by the false-alarm policy: %s", detection.detection_id, describe(exc))

    def _prioritise(self, incident: wire.Incident, now_ns: int) -> wire.Incident:
        """The incident with the policy's priority; an alert when the policy fails (never lost)."""
        try:
            decision = self.policy.decide(incident, now_ns)
        except Exception as exc:
            log.error(
                "incident %s: false-alarm policy failed, kept as an alert: %s", incident.incident_id[:8], describe(exc)
            )
            return msgspec.structs.replace(incident, priority=wire.IncidentPriority.ALERT)
        label = str(incident.label)
        if decision.previous is None:
            self.metrics.incidents.labels(label=label, priority=str(decision.priority)).inc()
        elif decision.upgraded:
            self.metrics.upgrades.labels(label=label).inc()
            log.info("incident %s %s upgraded to %s", incident.incident_id[:8], label, decision.priority)
        return msgspec.structs.replace(incident, priority=decision.priority)

    def _policy_turn(self, now_ns: int) -> None:
        """Let the policy's storms end and flags clear; log, count and store its transitions. Never raises."""
        try:
            self.policy.advance(now_ns)
            events = self.policy.take_events()
        except Exception as exc:
            log.error("false-alarm policy failed to advance: %s", describe(exc))
            return
        for event in events:
            (log.info if event.kind is EventKind.SENSOR_CLEARED else log.warning)("%s", event.describe())
            label = str(event.label)
            if event.kind is EventKind.STORM_STARTED:
                self.metrics.storms.labels(label=label).inc()
            if event.sensor_id is not None:
                self._flags_unsaved.add(event.sensor_id)
        if events or self._gauges_stale:
            self._gauges_stale = False
            storms = self.policy.storms()
            noisy = self.policy.noisy_sensors()
            for label in wire.Label:
                self.metrics.storm_active.labels(label=str(label)).set(int(label in storms))
                self.metrics.noisy_sensors.labels(label=str(label)).set(sum(label in s for s in noisy.values()))
        if now_ns < self._flags_retry_at_ns:
            return
        for sensor_id in sorted(self._flags_unsaved):
            try:
                self.store.set_noisy_labels(sensor_id, self.policy.noisy_labels(sensor_id))
            except Exception as exc:
                log.warning("sensor %r: noisy flag not stored (tried again in a second): %s", sensor_id, describe(exc))
                self._flags_retry_at_ns = now_ns + INCIDENT_RETRY_NS
                return
            self._flags_unsaved.discard(sensor_id)


__all__ = ["INCIDENT_RETRY_NS", "Arrival", "AssociationQueue", "Associator", "PolePosition"]
