"""What the fusion node counts and keeps: its metrics, why a message was quarantined, and the quarantine.

Shared by the intake (:mod:`sed.fusion.intake`, the receive thread) and the association
worker (:mod:`sed.fusion.associator`); neither touches the other's state through here.
"""

from __future__ import annotations

import enum
import logging

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from sed import wire
from sed.store import Store
from sed.wire import printable

log = logging.getLogger("sed.fusion")

#: Longest error text quoted in a log line or a reject, characters.
MAX_DETAIL_CHARS = 300


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
        self.backlog = Gauge(
            "sed_fusion_backlog",
            "Detections received, stored and acked, waiting for the association worker.",
            registry=r,
        )
        self.overloaded = Gauge(
            "sed_fusion_overloaded",
            "1 while association falls behind intake (nothing is dropped: detections wait, gunshots first).",
            registry=r,
        )
        for label in wire.Label:  # every series exists from the start, at 0
            self.storm_active.labels(label=str(label)).set(0)
            self.noisy_sensors.labels(label=str(label)).set(0)


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


def keep_quarantined(
    *,
    store: Store,
    metrics: FusionMetrics,
    sensor_id: str,
    message: wire.Message,
    reason: QuarantineReason,
    cause: BaseException | str,
    received_at_ns: int,
) -> None:
    """Log, count and keep one message in the quarantine table; never raises (answering is the caller's)."""
    message_id = wire.message_id(message)
    kind = type(message).__name__
    detail = describe(cause)
    metrics.quarantined.labels(reason=str(reason)).inc()
    log.warning(
        "quarantined %s %r from sensor %r (%s): %s",
        kind,
        printable(message_id, max_chars=MAX_DETAIL_CHARS),
        printable(sensor_id, max_chars=MAX_DETAIL_CHARS),
        reason,
        detail,
    )
    try:
        store.quarantine.add(
            sensor_id=sensor_id,
            received_at_ns=received_at_ns,
            reason=str(reason),
            detail=detail,
            payload=payload_of(message),
            message_type=kind,
            message_id=message_id or None,
        )
    except Exception as exc:
        log.error("quarantined %s %r could not be kept in the store: %s", kind, message_id, describe(exc))


__all__ = ["MAX_DETAIL_CHARS", "FusionMetrics", "QuarantineReason", "describe", "keep_quarantined", "payload_of"]
