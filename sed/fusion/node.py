"""The fusion node: ``sed fusion --config server.toml``.

Two threads. The receive loop (the caller's) takes what sensors send (:mod:`sed.fusion.receiver`),
stores each batch of detections in one transaction and acknowledges it after the commit
(:mod:`sed.fusion.intake`); it never waits for association. The association worker
(:mod:`sed.fusion.associator`) associates and locates (:mod:`sed.fusion.incidents`) about every
20 ms, commits the incidents that changed and then announces them to ``on_incident`` and, when
``api.incident_feed_endpoint`` is set, on a ZeroMQ PUB socket a separate ``sed api`` follows.
Each message is handled in isolation: one that cannot be handled is quarantined and rejected,
and the loop goes on. When either thread fails, :func:`run` raises; ``sed fusion`` then exits
non-zero so systemd restarts it (``sed server``'s supervisor stops the process).

On start the node takes back the recent stored detections no incident holds and the open
incidents late detections may still join (``[fusion] resume_lookback_s``). The false-alarm
policy (:mod:`sed.fusion.policy`, ``[fusion.policy]``) gives each incident its priority before
it is committed; on start it replays the last hour's stored detections, so sensors' rates
and noisy flags survive a restart.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

import zmq
from prometheus_client import CollectorRegistry

from sed import wire
from sed.config import ServerConfig
from sed.errors import WireError
from sed.fusion.incidents import IncidentBuilder
from sed.fusion.intake import MAX_BATCH, FusionMetrics, Intake, describe
from sed.fusion.policy import SENSOR_WINDOW_NS, FalseAlarmPolicy
from sed.fusion.receiver import Receiver
from sed.runtime import start_service
from sed.store import Store
from sed.supervise import Liveness

log = logging.getLogger("sed.fusion")

#: How long one receive poll waits, and how often the association worker turns, ms.
POLL_TIMEOUT_MS = 20
#: Longest a thread holds the GIL while another waits for it, s (Python's default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0005
#: How long a stopping node waits for its association worker's last turn, s.
WORKER_JOIN_S = 10.0


def run(
    config: ServerConfig,
    stop: threading.Event,
    *,
    store: Store,
    on_incident: Callable[[wire.Incident], None] | None = None,
    on_ready: Callable[[str], None] | None = None,
    liveness: Liveness | None = None,
    association_liveness: Liveness | None = None,
    registry: CollectorRegistry | None = None,
) -> None:
    """Serve until ``stop`` is set; raise when the loop or the association worker fails.

    Parameters
    ----------
    config : ServerConfig
    stop : threading.Event
    store : Store
        Where detections, clips, heartbeats, incidents and quarantined messages are committed.
    on_incident : callable, optional
        Called with each created or updated incident after it is committed (from the
        association worker's thread).
    on_ready : callable, optional
        Called with the bound endpoint once sensors can connect.
    liveness : Liveness, optional
        Beaten every turn of the receive loop (the calling thread); given the association
        backlog and the receiver's problems (unreadable key files), for ``/healthz``.
    association_liveness : Liveness, optional
        The association worker's record (a supervisor may watch it); one of its own by default.
        Its ``overload`` says when association falls behind (``/healthz``: degraded).
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
    worker = association_liveness if association_liveness is not None else Liveness("association")
    worker_stop = threading.Event()
    # The receive thread waits on sockets and the database, releasing the GIL each time; with the
    # association worker busy, taking it back costs up to one switch interval (5 ms by default)
    # per release, which caps acks far below what the intake can store.
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
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
        intake.association.resume(lookback_s=config.fusion.resume_lookback_s, now_ns=time.time_ns())
        if liveness is not None:
            liveness.backlog = lambda: len(intake.queue)
        worker.backlog = lambda: len(intake.queue)
        worker.start(
            lambda: _associate(intake, worker_stop, worker, on_incident, publisher), thread_name="sed-association"
        )
        log.info("listening for sensors on %s", receiver.endpoint)
        if on_ready is not None:
            on_ready(receiver.endpoint)
        while not stop.is_set():
            if liveness is not None:
                liveness.beat()
                liveness.problems = list(receiver.problems)
            if worker.thread is None or not worker.thread.is_alive():  # association stopped: restart the node
                raise RuntimeError(f"the association worker died: {worker.error}")
            receiver.check_alive()
            envelopes = receiver.poll(POLL_TIMEOUT_MS, max_messages=MAX_BATCH)
            for refused in receiver.take_refused():  # kept before anything of the same batch is acked
                intake.keep_refused(refused, received_at_ns=time.time_ns())
            intake.handle_batch(envelopes)
            worker.overload = intake.association.check_overload(time.time_ns())
    finally:
        worker.stopping()
        worker_stop.set()
        if (thread := worker.thread) is not None:
            thread.join(timeout=WORKER_JOIN_S)
        if publisher is not None:
            publisher.close(linger=0)
        if receiver is not None:
            receiver.close()
            log.info("stopped (%s)", receiver.stats)


def _associate(
    intake: Intake,
    stop: threading.Event,
    worker: Liveness,
    on_incident: Callable[[wire.Incident], None] | None,
    publisher: zmq.Socket | None,
) -> None:
    """The association worker: a turn about every :data:`POLL_TIMEOUT_MS`, announcing what it committed."""
    period_s = POLL_TIMEOUT_MS / 1000
    while not stop.is_set():
        worker.beat()
        started_s = time.monotonic()
        for incident in intake.poll(time.time_ns()):
            _announce(incident, on_incident, publisher)
        stop.wait(max(0.0, period_s - (time.monotonic() - started_s)))


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
