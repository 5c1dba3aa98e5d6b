"""The fusion node: ``sed fusion --config server.toml``.

Receives detections, clips and heartbeats from sensors (:mod:`sed.fusion.receiver`),
stores each before acknowledging it, associates and locates (:mod:`sed.fusion.incidents`)
and commits incidents to the store before announcing them to ``on_incident`` and, when
``api.incident_feed_endpoint`` is set, on a ZeroMQ PUB socket a separate ``sed api`` follows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq

from sed import wire
from sed.config import ServerConfig
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.receiver import Receiver
from sed.runtime import start_service
from sed.store import Store

log = logging.getLogger("sed.fusion")

#: How long one receive poll waits before incidents are re-evaluated, ms.
POLL_TIMEOUT_MS = 20


def run(
    config: ServerConfig,
    stop: threading.Event,
    *,
    store: Store,
    on_incident: Callable[[wire.Incident], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until ``stop`` is set.

    Parameters
    ----------
    config : ServerConfig
    stop : threading.Event
    store : Store
        Where detections, clips, heartbeats and incidents are committed.
    on_incident : callable, optional
        Called with each created or updated incident after it is committed.
    on_ready : callable, optional
        Called with the bound endpoint once sensors can connect.
    """
    publisher = None
    if config.api.incident_feed_endpoint:  # a separate `sed api` follows committed incidents here
        publisher = zmq.Context.instance().socket(zmq.PUB)
        publisher.bind(config.api.incident_feed_endpoint)
        log.info("announcing incidents on %s", config.api.incident_feed_endpoint)
    receiver = Receiver(
        bind_endpoint=config.fusion.bind_endpoint,
        secret_key_file=config.fusion.secret_key_file,
        authorized_keys_dir=config.fusion.authorized_keys_dir,
    )
    builder = IncidentBuilder(config.fusion, temperature_c=config.site.temperature_c)
    log.info("listening for sensors on %s", receiver.endpoint)
    if on_ready is not None:
        on_ready(receiver.endpoint)
    try:
        while not stop.is_set():
            for envelope in receiver.poll(POLL_TIMEOUT_MS):
                _handle(envelope.message, envelope.routing_id, receiver, store, builder)
            for incident in builder.poll(time.time_ns()):
                store.save_incident(incident, updated_at_ns=time.time_ns())
                log.info(
                    "incident %s %s at %s ±%s m from %d sensors",
                    incident.incident_id[:8],
                    incident.label,
                    None
                    if incident.position is None
                    else f"({incident.position.x_m:.1f}, {incident.position.y_m:.1f})",
                    None if incident.uncertainty_m is None else f"{incident.uncertainty_m:.1f}",
                    len(incident.sensor_ids),
                )
                if on_incident is not None:
                    on_incident(incident)
                if publisher is not None:
                    publisher.send(wire.encode(incident), zmq.NOBLOCK)  # PUB never blocks; slow subscribers drop
    finally:
        if publisher is not None:
            publisher.close(linger=0)
        receiver.close()
        log.info("stopped (%s)", receiver.stats)


def _handle(
    message: wire.Message, routing_id: bytes, receiver: Receiver, store: Store, builder: IncidentBuilder
) -> None:
    now = time.time_ns()
    if isinstance(message, wire.Detection):
        if store.add_detection(message, received_at_ns=now):
            builder.add(message, received_at_ns=now)
            store.touch_sensor(message.sensor_id, message.position, seen_at_ns=now)
        receiver.ack(routing_id, [wire.message_id(message)])  # acked after commit; duplicates re-acked
    elif isinstance(message, wire.EvidenceClip):
        store.add_clip(message, received_at_ns=now)
        receiver.ack(routing_id, [wire.message_id(message)])
    elif isinstance(message, wire.Heartbeat):
        store.record_heartbeat(message, received_at_ns=now)
        receiver.ack(routing_id, [])  # tells the sensor the link is up
    else:
        log.warning("unexpected %s from a sensor; dropped", type(message).__name__)


def main(argv: list[str], *, prog: str) -> int:
    config, stop = start_service(
        argv,
        prog=prog,
        description=__doc__,
        kind=ServerConfig,
        config_help="server TOML ([fusion], [store], [site])",
        component=lambda _: "fusion",
    )
    store = Store(config.store.url)
    try:
        run(config, stop, store=store)
    finally:
        store.close()
    return 0


__all__ = ["run"]
