"""The fusion node: ``sed fusion --config server.toml``.

Receives detections, clips and heartbeats from sensors (:mod:`sed.fusion.receiver`),
stores each before acknowledging it, associates and locates (:mod:`sed.fusion.incidents`)
and commits incidents to the store before announcing them to ``on_incident`` and, when
``api.incident_feed_endpoint`` is set, on a ZeroMQ PUB socket a separate ``sed api`` follows.
Each message is handled in isolation (:mod:`sed.fusion.intake`): one that cannot be handled
is quarantined and rejected, and the loop goes on. An error of the loop itself (the socket)
ends :func:`run`; ``sed fusion`` then exits non-zero so systemd restarts it.

The false-alarm policy (:mod:`sed.fusion.policy`, ``[fusion.policy]``) gives each incident
its priority before it is committed; on start it replays the last hour's stored
detections, so sensors' rates and noisy flags survive a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq
from prometheus_client import CollectorRegistry

from sed import wire
from sed.config import ServerConfig
from sed.errors import WireError
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.intake import FusionMetrics, Intake, describe
from sed.fusion.policy import SENSOR_WINDOW_NS, FalseAlarmPolicy
from sed.fusion.receiver import Receiver
from sed.runtime import start_service
from sed.store import Store
from sed.supervise import Liveness

log = logging.getLogger("sed.fusion")

#: How long one receive poll waits before incidents are re-evaluated, ms.
POLL_TIMEOUT_MS = 20
#: Stored detections no incident holds, received this long before a start, are associated again, s:
#: those the node stored and acknowledged just before it stopped (the sensor will not resend them).
RESUME_LOOKBACK_S = 300.0


def run(
    config: ServerConfig,
    stop: threading.Event,
    *,
    store: Store,
    on_incident: Callable[[wire.Incident], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
    liveness: Liveness | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Serve until ``stop`` is set.

    Parameters
    ----------
    config : ServerConfig
    stop : threading.Event
    store : Store
        Where detections, clips, heartbeats, incidents and quarantined messages are committed.
    on_incident : callable, optional
        Called with each created or updated incident after it is committed.
    on_ready : callable, optional
        Called with the bound endpoint once sensors can connect.
    liveness : Liveness, optional
        Beaten every turn of the loop; given the backlog (detections waiting for peers) and
        the receiver's problems (unreadable key files), for ``/healthz``.
    registry : CollectorRegistry, optional
        Where the fusion metrics are registered (the API's, in ``sed server``).
    """
    publisher = None
    if config.api.incident_feed_endpoint:  # a separate `sed api` follows committed incidents here
        publisher = zmq.Context.instance().socket(zmq.PUB)
        publisher.bind(config.api.incident_feed_endpoint)
        log.info("announcing incidents on %s", config.api.incident_feed_endpoint)
    site_radius_m = config.site.radius_m
    receiver = None
    try:
        receiver = Receiver(
            bind_endpoint=config.fusion.bind_endpoint,
            secret_key_file=config.fusion.secret_key_file,
            authorized_keys_dir=config.fusion.authorized_keys_dir,
            site_radius_m=site_radius_m,
            max_streams_per_sensor=config.fusion.max_streams_per_sensor,
        )
        builder = IncidentBuilder(config.fusion, temperature_c=config.site.temperature_c, site_radius_m=site_radius_m)
        policy = FalseAlarmPolicy(config.fusion.policy)
        _seed_policy(store, policy)
        intake = Intake(store=store, builder=builder, receiver=receiver, metrics=FusionMetrics(registry), policy=policy)
        _resume(store, builder)
        if liveness is not None:
            liveness.backlog = lambda: builder.n_pending
        log.info("listening for sensors on %s", receiver.endpoint)
        if on_ready is not None:
            on_ready(receiver.endpoint)
        while not stop.is_set():
            if liveness is not None:
                liveness.beat()
                liveness.problems = list(receiver.problems)
            receiver.check_alive()
            envelopes = receiver.poll(POLL_TIMEOUT_MS)
            for refused in receiver.take_refused():  # kept before anything of the same batch is acked
                intake.keep_refused(refused, received_at_ns=time.time_ns())
            for envelope in envelopes:
                intake.handle(envelope)
            for incident in intake.poll(time.time_ns()):
                _announce(incident, on_incident, publisher)
    finally:
        if publisher is not None:
            publisher.close(linger=0)
        if receiver is not None:
            receiver.close()
            log.info("stopped (%s)", receiver.stats)


def _resume(store: Store, builder: IncidentBuilder) -> None:
    """Queue again the recent stored detections no incident holds (the node stopped before it committed one)."""
    since_ns = time.time_ns() - int(RESUME_LOOKBACK_S * 1e9)
    resumed = 0
    for stored in store.unassigned_detections(received_since_ns=since_ns):
        try:
            builder.add(stored.detection, received_at_ns=stored.received_at_ns)
            resumed += 1
        except Exception as exc:  # quarantined when it first came; it stays stored and unassigned
            log.warning("stored detection %r not resumed: %s", stored.detection.detection_id, describe(exc))
    if resumed:
        log.info("resumed associating %d stored detections no incident holds yet", resumed)


def _seed_policy(store: Store, policy: FalseAlarmPolicy) -> None:
    """Replay the last hour's detections into the policy and store exactly the noisy flags it holds."""
    now_ns = time.time_ns()
    policy.seed(store.recent_detections(received_since_ns=now_ns - SENSOR_WINDOW_NS))
    policy.advance(now_ns)
    policy.take_events()  # the flags below say it all; a restart is not a transition
    noisy = policy.noisy_sensors()
    store.replace_noisy_labels(noisy)
    if noisy:
        log.warning(
            "sensors noisy over the last hour (uncorroborated incidents not alerts): %s",
            ", ".join(f"{s} ({'/'.join(sorted(labels))})" for s, labels in sorted(noisy.items())),
        )


def _announce(
    incident: wire.Incident, on_incident: Callable[[wire.Incident], None] | None, publisher: zmq.Socket | None
) -> None:
    """Log and announce a committed incident; a failing listener does not stop the node."""
    log.info(
        "incident %s %s at %s ±%s m from %d sensors",
        incident.incident_id[:8],
        incident.label,
        None if incident.position is None else f"({incident.position.x_m:.1f}, {incident.position.y_m:.1f})",
        None if incident.uncertainty_m is None else f"{incident.uncertainty_m:.1f}",
        len(incident.sensor_ids),
    )
    if on_incident is not None:
        try:
            on_incident(incident)
        except Exception as exc:
            log.error("announcing incident %s failed: %s", incident.incident_id[:8], describe(exc), exc_info=True)
    if publisher is not None:
        try:
            publisher.send(wire.encode(incident), zmq.NOBLOCK)  # PUB never blocks; slow subscribers drop
        except (zmq.ZMQError, WireError) as exc:  # e.g. an incident over the size limit
            log.error("publishing incident %s failed: %s", incident.incident_id[:8], describe(exc))


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
    except Exception as exc:  # the loop itself failed: exit non-zero so systemd restarts the node
        log.critical("fusion node failed: %s", describe(exc), exc_info=True)
        return 1
    finally:
        store.close()
    return 0


__all__ = ["run"]
