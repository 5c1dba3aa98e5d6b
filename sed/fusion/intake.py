"""What sensors send, handled in batches on the receive thread: stored and answered, or quarantined.

The intake never waits for association. A batch of detections (what the socket holds, up to
:data:`MAX_BATCH`) is admitted by the incident builder (``admit`` is pure: no state of the
builder is touched), stored in one transaction, acknowledged after the commit (one
:class:`~sed.wire.Ack` per sensor connection) and handed to the association worker
(:mod:`sed.fusion.associator`) through a queue. A resent detection that is stored but that
no incident holds goes to association too (the node may have stopped before it associated
it); the worker ignores it when the builder holds it already.

Whatever goes wrong with one message stays with that message. An error the database
raises because it is unreachable or busy leaves the batch unacknowledged: the sensors
resend, and it is stored once the database is back. A value the database refuses fails
the batch's transaction: the batch is then stored one message at a time, so only that
message is quarantined. Any other error (a detection the incident builder cannot take, a
message no sensor should send, a bug) quarantines the message alone: one escaped log line,
a count in ``sed_fusion_quarantined_total{reason}``, the message kept in the store's
quarantine table for an admin (``GET /api/quarantine``), and a :class:`~sed.wire.Reject` so
the sensor stops resending it. The loop goes on. (The traceback of an unexpected error is
logged at DEBUG level.)

:meth:`Intake.poll` runs one association turn (:meth:`Associator.turn`); the fusion node calls
it from its association worker thread, tests from theirs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from sed import wire
from sed.config import PolicySection
from sed.fusion.accounting import (
    MAX_DETAIL_CHARS,
    FusionMetrics,
    QuarantineReason,
    describe,
    keep_quarantined,
    payload_of,
)
from sed.fusion.associator import INCIDENT_RETRY_NS, Arrival, AssociationQueue, Associator, PolePosition
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.policy import FalseAlarmPolicy
from sed.fusion.receiver import Envelope, Receiver, Refused
from sed.store import Store
from sed.store.store import is_transient

log = logging.getLogger("sed.fusion")

#: Most messages stored in one transaction (and read from the socket per turn).
MAX_BATCH = 500


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


class Intake:
    """The receive side of one fusion node, and (:attr:`association`) its association side.

    Parameters
    ----------
    store : Store
    builder : IncidentBuilder
        Only ``admit`` is called here; the association worker owns the rest.
    receiver : Receiver
        Answers with acks and rejects; used from the receive thread only.
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
        self.receiver = receiver
        self.metrics = metrics
        self.queue = AssociationQueue()
        self.association = Associator(
            store=store,
            builder=builder,
            metrics=metrics,
            policy=policy if policy is not None else FalseAlarmPolicy(PolicySection(enabled=False)),
            queue=self.queue,
        )
        self._admit = builder.admit

    @property
    def builder(self) -> IncidentBuilder:
        return self.association.builder

    @property
    def policy(self) -> FalseAlarmPolicy:
        return self.association.policy

    def poll(self, now_ns: int) -> list[wire.Incident]:
        """One association turn: the incidents created or changed, each committed; never raises."""
        return self.association.turn(now_ns)

    # ----------------------------------------------------------------- messages

    def handle(self, envelope: Envelope) -> None:
        """Store, queue and answer one message; never raises for anything the message holds."""
        self.handle_batch([envelope])

    def handle_batch(self, envelopes: list[Envelope]) -> None:
        """Store, queue and answer a batch: its detections in one transaction; never raises for
        anything a message holds."""
        now_ns = time.time_ns()
        admitted: list[Envelope] = []
        for envelope in envelopes:
            if isinstance(envelope.message, wire.Detection):
                if self._guard(envelope, now_ns, lambda e, _now: self._admitted(e)):
                    admitted.append(envelope)
            else:
                self._guard(envelope, now_ns, self._dispatch_other)
        if admitted:
            self._store_detections(admitted, now_ns)

    def _guard(self, envelope: Envelope, now_ns: int, step: Callable[[Envelope, int], None]) -> bool:
        """Run ``step(envelope, now_ns)``; quarantine or leave unanswered on failure. ``True`` if it passed."""
        try:
            step(envelope, now_ns)
            return True
        except _RefusedError as refused:
            self.quarantine(envelope, refused.reason, refused.cause, received_at_ns=now_ns)
        except Exception as exc:
            if is_transient(exc):
                self._unavailable([envelope], exc)
                return False
            log.debug("handling a message from sensor %r failed", envelope.sensor_id, exc_info=True)
            self.quarantine(envelope, QuarantineReason.INTERNAL, exc, received_at_ns=now_ns)
        return False

    def _admitted(self, envelope: Envelope) -> None:
        with _stage(QuarantineReason.ADMISSION):
            self._admit(envelope.message)

    def _unavailable(self, envelopes: list[Envelope], exc: BaseException) -> None:
        self.metrics.store_unavailable.inc(len(envelopes))
        first = envelopes[0]
        log.warning(
            "sensor %r: %s %r%s not stored, the database is unavailable (the sensor resends): %s",
            first.sensor_id,
            type(first.message).__name__,
            wire.message_id(first.message),
            f" and {len(envelopes) - 1} more" if len(envelopes) > 1 else "",
            describe(exc),
        )

    def _store_detections(self, envelopes: list[Envelope], now_ns: int) -> None:
        try:
            new = self.store.add_detections([(e.message, now_ns) for e in envelopes])
        except Exception as exc:
            if is_transient(exc):
                self._unavailable(envelopes, exc)
                return
            # A value the database refuses fails the whole transaction: find it, one at a time.
            log.debug("storing %d detections at once failed; one by one: %s", len(envelopes), describe(exc))
            for envelope in envelopes:
                self._guard(envelope, now_ns, self._store_one)
            return
        self._stored(envelopes, new, now_ns)

    def _store_one(self, envelope: Envelope, now_ns: int) -> None:
        message = envelope.message
        with _stage(QuarantineReason.STORE):
            new = self.store.add_detection(message, received_at_ns=now_ns)
        if new:
            try:  # stored already: a failure to note the sensor must not refuse the detection
                self.store.touch_sensor(message.sensor_id, message.position, seen_at_ns=now_ns)
            except Exception as exc:
                log.warning("sensor %r: last-seen not updated: %s", message.sensor_id, describe(exc))
        self._stored([envelope], [new], now_ns)

    def _stored(self, envelopes: list[Envelope], new: list[bool], now_ns: int) -> None:
        """Queue the committed detections for association, then acknowledge them."""
        duplicates = [e.message.detection_id for e, is_new in zip(envelopes, new, strict=True) if not is_new]
        unassigned: set[str] = set()
        if duplicates:
            try:
                unassigned = self.store.unassigned_among(duplicates)
            except Exception as exc:  # unknown whether an incident holds them: no ack, the sensors resend
                self._unavailable([e for e, is_new in zip(envelopes, new, strict=True) if not is_new], exc)
                envelopes = [e for e, is_new in zip(envelopes, new, strict=True) if is_new]
                new = [True] * len(envelopes)
        arrivals: list[Arrival | PolePosition] = [
            Arrival(detection=e.message, received_at_ns=now_ns, pole_id=e.sensor_id, resent=not is_new)
            for e, is_new in zip(envelopes, new, strict=True)
            if is_new or e.message.detection_id in unassigned
        ]
        self.queue.put(arrivals, now_ns=now_ns)
        by_connection: dict[bytes, list[str]] = {}
        for envelope in envelopes:
            by_connection.setdefault(envelope.routing_id, []).append(wire.message_id(envelope.message))
        for routing_id, ids in by_connection.items():  # after the commit; duplicates re-acked
            for i in range(0, len(ids), wire.MAX_IDS_PER_REPLY):
                self.receiver.ack(routing_id, ids[i : i + wire.MAX_IDS_PER_REPLY])

    def _dispatch_other(self, envelope: Envelope, now_ns: int) -> None:
        message = envelope.message
        if isinstance(message, wire.EvidenceClip):
            with _stage(QuarantineReason.STORE):
                self.store.add_clip(message, received_at_ns=now_ns)
            self.receiver.ack(envelope.routing_id, [wire.message_id(message)])
        elif isinstance(message, wire.Heartbeat):
            with _stage(QuarantineReason.STORE):
                self.store.record_heartbeat(message, received_at_ns=now_ns)
            if message.position is not None:  # a live pole keeps its position counting for the wait bound
                p = message.position
                position = PolePosition(
                    sensor_id=message.sensor_id, position_m=(p.x_m, p.y_m, p.z_m), heard_at_ns=now_ns
                )
                self.queue.put([position], now_ns=now_ns)
            self.receiver.ack(envelope.routing_id, [])  # tells the sensor the link is up
        else:
            raise _RefusedError(
                QuarantineReason.UNEXPECTED, f"a sensor does not send {type(message).__name__} messages"
            )

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
        keep_quarantined(
            store=self.store,
            metrics=self.metrics,
            sensor_id=envelope.sensor_id,
            message=message,
            reason=reason,
            cause=cause,
            received_at_ns=received_at_ns,
        )
        message_id = wire.message_id(message)
        if answer and message_id:
            try:
                self.receiver.reject(envelope.routing_id, [message_id], f"{reason}: {describe(cause)}")
            except Exception as exc:
                log.error("reject of %s %r not sent: %s", type(message).__name__, message_id, describe(exc))

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


__all__ = [
    "INCIDENT_RETRY_NS",
    "MAX_BATCH",
    "MAX_DETAIL_CHARS",
    "FusionMetrics",
    "Intake",
    "QuarantineReason",
    "describe",
    "payload_of",
]
