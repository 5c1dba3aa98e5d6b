"""Each message a sensor sends, handled in isolation: stored and answered, or quarantined.

Whatever goes wrong with one message stays with that message. An error the database
raises because it is unreachable or busy leaves the message unacknowledged: the sensor
resends it, and it is stored once the database is back. Any other error (a value the
database refuses, a detection the incident builder cannot take, a message no sensor
should send, a bug) quarantines it: one escaped log line, a count in
``sed_fusion_quarantined_total{reason}``, the message kept in the store's quarantine
table for an admin (``GET /api/quarantine``), and a :class:`~sed.wire.Reject` so the
sensor stops resending it. The fusion node's loop goes on. (The traceback of an
unexpected error is logged at DEBUG level.)

A detection is first admitted by the incident builder, then stored, then queued for
association; if queueing still fails the stored row is removed again before the reject,
so no detection is ever acknowledged (or stored) and then silently left out of every
incident.

Every stored detection is noted by the false-alarm policy (:mod:`sed.fusion.policy`) and
every incident the builder creates or changes gets its priority from it before it is
committed. Its transitions are logged in one line each, counted (``sed_fusion_storms_total``,
``sed_fusion_storm_active``, ``sed_fusion_noisy_sensors``, ``sed_fusion_incidents_total
{label, priority}``) and noisy flags written to the sensors table for the API. A failure
of the policy never loses an incident: it is committed as an alert.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Iterator

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from sed import wire
from sed.config import PolicySection
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.policy import EventKind, FalseAlarmPolicy
from sed.fusion.receiver import Envelope, Receiver, Refused
from sed.store import Store
from sed.store.store import is_transient
from sed.wire import printable

log = logging.getLogger("sed.fusion")

#: Longest error text quoted in a log line or a reject, characters.
MAX_DETAIL_CHARS = 300
#: How often incidents (and noisy flags) the database could not take are tried again, ns.
INCIDENT_RETRY_NS = 1_000_000_000


class QuarantineReason(enum.StrEnum):
    """Where handling a message failed (the ``reason`` label of the metric: a closed set)."""

    ADMISSION = "admission"  # the incident builder cannot take the detection
    STORE = "store"  # the database refused the message's values
    ASSOCIATION = "association"  # queueing or associating the stored detection failed
    UNEXPECTED = "unexpected_type"  # a message type sensors do not send
    INTERNAL = "internal"  # anything else: a bug, caught so the loop goes on


class FusionMetrics:
    """Counters of the fusion node, on ``registry`` (the API's in ``sed server``, so ``/metrics`` shows them)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.quarantined = Counter(
            "sed_fusion_quarantined",
            "Messages the fusion node refused or could not handle: quarantined (and rejected when they name an id).",
            ["reason"],
            registry=r,
        )
        self.store_unavailable = Counter(
            "sed_fusion_store_unavailable",
            "Messages left unacknowledged because the database was unreachable (the sensor resends).",
            registry=r,
        )
        self.incident_errors = Counter(
            "sed_fusion_incident_errors", "Incident updates that could not be stored.", ["transient"], registry=r
        )
        self.incidents = Counter(
            "sed_fusion_incidents",
            "Incidents created, by class and the priority the false-alarm policy gave them first.",
            ["label", "priority"],
            registry=r,
        )
        self.upgrades = Counter(
            "sed_fusion_incident_upgrades", "Unconfirmed incidents upgraded to alerts.", ["label"], registry=r
        )
        self.storms = Counter(
            "sed_fusion_storms", "Storms (too many incidents of a class at once) that started.", ["label"], registry=r
        )
        self.storm_active = Gauge(
            "sed_fusion_storm_active", "1 while new incidents of the class are suppressed.", ["label"], registry=r
        )
        self.noisy_sensors = Gauge(
            "sed_fusion_noisy_sensors", "Sensors flagged noisy for the class.", ["label"], registry=r
        )
        for label in wire.Label:  # every series exists from the start, at 0
            self.storm_active.labels(label=str(label)).set(0)
            self.noisy_sensors.labels(label=str(label)).set(0)


class _RefusedError(Exception):
    """Handling failed at ``reason`` for a cause a resend would not cure."""

    def __init__(self, reason: QuarantineReason, cause: BaseException | str) -> None:
        super().__init__(str(cause))
        self.reason = reason
        self.cause = cause


@contextlib.contextmanager
def _stage(reason: QuarantineReason) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise
        raise _RefusedError(reason, exc) from exc


def describe(cause: BaseException | str) -> str:
    """An error as one printable line of at most :data:`MAX_DETAIL_CHARS`."""
    text = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
    return printable(text, max_chars=MAX_DETAIL_CHARS)


def payload_of(message: wire.Message) -> bytes:
    """The message as msgpack again, bounded by the wire's size limit."""
    try:
        return msgspec.msgpack.encode(message)[: wire.MAX_MESSAGE_BYTES]
    except Exception:  # cannot happen for a decoded message; keep what can be kept
        return repr(message).encode("utf-8", "backslashreplace")[: wire.MAX_MESSAGE_BYTES]


class Intake:
    """Handles envelopes and incident polls of one fusion node.

    Parameters
    ----------
    store : Store
    builder : IncidentBuilder
    receiver : Receiver
        Answers with acks and rejects.
    metrics : FusionMetrics
    policy : FalseAlarmPolicy, optional
        Gives each incident its priority; default: none (every incident is an alert).
    """

    def __init__(
        self,
        *,
        store: Store,
        builder: IncidentBuilder,
        receiver: Receiver,
        metrics: FusionMetrics,
        policy: FalseAlarmPolicy | None = None,
    ) -> None:
        self.store = store
        self.builder = builder
        self.receiver = receiver
        self.metrics = metrics
        self.policy = policy if policy is not None else FalseAlarmPolicy(PolicySection(enabled=False))
        self._flags_unsaved: set[str] = set()  # sensors whose noisy flag the database did not take yet
        self._flags_retry_at_ns = 0
        self._gauges_stale = True  # the policy may start with flags (replayed at start)
        self._unsaved: dict[str, wire.Incident] = {}  # incidents the database could not take yet
        self._retry_at_ns = 0

    # ----------------------------------------------------------------- messages

    def handle(self, envelope: Envelope) -> None:
        """Store, queue and answer one message; never raises for anything the message holds."""
        now_ns = time.time_ns()
        try:
            self._dispatch(envelope, now_ns)
        except _RefusedError as refused:
            self.quarantine(envelope, refused.reason, refused.cause, received_at_ns=now_ns)
        except Exception as exc:
            if is_transient(exc):
                self.metrics.store_unavailable.inc()
                log.warning(
                    "sensor %r: %s %r not stored, the database is unavailable (the sensor resends): %s",
                    envelope.sensor_id,
                    type(envelope.message).__name__,
                    wire.message_id(envelope.message),
                    describe(exc),
                )
                return
            log.debug("handling a message from sensor %r failed", envelope.sensor_id, exc_info=True)
            self.quarantine(envelope, QuarantineReason.INTERNAL, exc, received_at_ns=now_ns)

    def _dispatch(self, envelope: Envelope, now_ns: int) -> None:
        message = envelope.message
        if isinstance(message, wire.Detection):
            with _stage(QuarantineReason.ADMISSION):
                self.builder.admit(message)
            with _stage(QuarantineReason.STORE):
                new = self.store.add_detection(message, received_at_ns=now_ns)
            if new:
                self._queue(message, now_ns)
                self._touch(message, now_ns)
                self._note(message, envelope.sensor_id, now_ns)
            self.receiver.ack(envelope.routing_id, [wire.message_id(message)])  # after commit; duplicates re-acked
        elif isinstance(message, wire.EvidenceClip):
            with _stage(QuarantineReason.STORE):
                self.store.add_clip(message, received_at_ns=now_ns)
            self.receiver.ack(envelope.routing_id, [wire.message_id(message)])
        elif isinstance(message, wire.Heartbeat):
            with _stage(QuarantineReason.STORE):
                self.store.record_heartbeat(message, received_at_ns=now_ns)
            if message.position is not None:  # a live pole keeps its position counting for the wait bound
                p = message.position
                self.builder.note_position(message.sensor_id, (p.x_m, p.y_m, p.z_m), heard_at_ns=now_ns)
            self.receiver.ack(envelope.routing_id, [])  # tells the sensor the link is up
        else:
            raise _RefusedError(
                QuarantineReason.UNEXPECTED, f"a sensor does not send {type(message).__name__} messages"
            )

    def _queue(self, detection: wire.Detection, now_ns: int) -> None:
        """Queue a stored detection for association; on failure it is unstored again."""
        try:
            self.builder.add(detection, received_at_ns=now_ns)
        except Exception as exc:
            try:
                self.store.discard_detection(detection.detection_id)
            except Exception:
                log.exception("detection %r is stored but could not be queued nor removed", detection.detection_id)
            raise _RefusedError(QuarantineReason.ASSOCIATION, exc) from exc

    def _touch(self, detection: wire.Detection, now_ns: int) -> None:
        # The detection is stored and queued: a failure to note the sensor must not refuse it.
        try:
            self.store.touch_sensor(detection.sensor_id, detection.position, seen_at_ns=now_ns)
        except Exception as exc:
            log.warning("sensor %r: last-seen not updated: %s", detection.sensor_id, describe(exc))

    def _note(self, detection: wire.Detection, pole_id: str, now_ns: int) -> None:
        # Stored and queued already: a failure here must not refuse the detection.
        try:
            self.policy.note_detection(detection.sensor_id, detection.label, now_ns, pole_id=pole_id)
        except Exception as exc:
            log.error("detection %r not counted by the false-alarm policy: %s", detection.detection_id, describe(exc))

    def quarantine(
        self,
        envelope: Envelope,
        reason: QuarantineReason,
        cause: BaseException | str,
        *,
        received_at_ns: int,
        answer: bool = True,
    ) -> None:
        """Log, count, keep and (``answer``) reject one message; never raises."""
        message = envelope.message
        message_id = wire.message_id(message)
        detail = describe(cause)
        kind = type(message).__name__
        self.metrics.quarantined.labels(reason=str(reason)).inc()
        log.warning(
            "quarantined %s %r from sensor %r (%s): %s",
            kind,
            printable(message_id, max_chars=MAX_DETAIL_CHARS),
            printable(envelope.sensor_id, max_chars=MAX_DETAIL_CHARS),
            reason,
            detail,
        )
        try:
            self.store.quarantine.add(
                sensor_id=envelope.sensor_id,
                received_at_ns=received_at_ns,
                reason=str(reason),
                detail=detail,
                payload=payload_of(message),
                message_type=kind,
                message_id=message_id or None,
            )
        except Exception as exc:
            log.error("quarantined %s %r could not be kept in the store: %s", kind, message_id, describe(exc))
        if answer and message_id:
            try:
                self.receiver.reject(envelope.routing_id, [message_id], f"{reason}: {detail}")
            except Exception as exc:
                log.error("reject of %s %r not sent: %s", kind, message_id, describe(exc))

    def keep_refused(self, refused: Refused, *, received_at_ns: int) -> None:
        """Count and keep a message the receiver refused (it was logged and, when it named an id, rejected there)."""
        self.metrics.quarantined.labels(reason=str(refused.reason)).inc()
        try:
            self.store.quarantine.add(
                sensor_id=refused.sensor_id,
                received_at_ns=received_at_ns,
                reason=str(refused.reason),
                detail=describe(refused.detail),
                payload=refused.payload,
                message_id=refused.message_id,
            )
        except Exception as exc:
            log.error(
                "refused message from sensor %r could not be kept in the store: %s", refused.sensor_id, describe(exc)
            )

    # ----------------------------------------------------------------- incidents

    def poll(self, now_ns: int) -> list[wire.Incident]:
        """The incidents created or changed, each committed to the store; never raises.

        When association fails, the pending detections that make it fail are quarantined
        (they were acknowledged already: no reject) and the rest go on waiting.
        """
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
            for detection, received_at_ns in evicted:
                envelope = Envelope(routing_id=b"", sensor_id=detection.sensor_id, message=detection)
                self.quarantine(
                    envelope, QuarantineReason.ASSOCIATION, exc, received_at_ns=received_at_ns, answer=False
                )
            incidents = []
        incidents = [self._prioritise(incident, now_ns) for incident in incidents]
        self._policy_turn(now_ns)
        changed = {incident.incident_id: incident for incident in incidents}
        retried = self._unsaved if now_ns >= self._retry_at_ns else {}
        pending = retried | changed  # a newer version of an unsaved incident supersedes it
        self._unsaved = {k: v for k, v in self._unsaved.items() if k not in pending}
        committed = []
        for incident in pending.values():
            try:
                self.store.save_incident(incident, updated_at_ns=time.time_ns())
            except Exception as exc:
                transient = is_transient(exc)
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
                continue
            committed.append(incident)
        return committed

    # ----------------------------------------------------------------- false-alarm policy

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


__all__ = ["FusionMetrics", "Intake", "QuarantineReason", "describe", "payload_of"]
