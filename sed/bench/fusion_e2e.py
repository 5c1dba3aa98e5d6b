"""A scenario's detections replayed end to end: real poles over CURVE into a real ``sed fusion`` process.

:func:`replay_over_curve` starts ``python -m sed fusion --config <workdir>/server.toml`` on
127.0.0.1 ports with the given store (SQLite or PostgreSQL), one CURVE key pair per pole
(each public key in ``fusion.authorized_keys_dir``), and ``api.incident_feed_endpoint`` set
so the committed incidents can be followed on its PUB socket. The poles are spread over a
few *sender processes* (:mod:`sed.bench.fusion_poles`, :data:`POLES_PER_SENDER` each by
default) so the offered load is not bounded by one Python process. Each pole speaks through a DEALER of its own,
like :class:`~sed.capture.sender.Sender`: ``ZMQ_IMMEDIATE``, one heartbeat with its
position when its handshake completes (and every ``heartbeat_interval_s``), each detection
sent when it is due and resent with the sensor's back-off (``transport.resend_initial_s``
doubling to ``transport.resend_max_s``) until an :class:`~sed.wire.Ack` names it or a
:class:`~sed.wire.Reject` does. One :class:`Sender` per pole does not scale here: 200 idle
ones take 1.1 cores (a thread and a ZeroMQ I/O thread each, polling an SQLite outbox every
20 ms) and one outbox ``put`` costs an fsync (~2.5 ms on the development machine's disk); the
pole's own durability is not what this harness measures. Against a node that acks at once,
1,000 poles offering 2,150 detections/s cost the sender processes ~0.2 cores.

**Time bases.** The node stamps and ages detections by its wall clock, so the scenario is
moved to *now*: the replay starts at wall time ``t0`` and the whole scenario is shifted by
``offset_ns = t0 - min(received_at_ns)``: a detection is sent at ``received_at_ns +
offset_ns`` and carries ``arrival_time_ns + offset_ns`` (all differences kept). Every time in
the :class:`TransportReport` (sends, acks, incident updates, and the incidents' own
``origin_time_ns`` and ``created_at_ns``) is shifted back by ``offset_ns``: it is in the
scenario's time base, as the in-process scorer sees it.

The harness depends only on the process, its config file and the wire: nothing of the
node's internals. Everything is stopped on the way out (the node by SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from sed import wire
from sed.bench.fusion_poles import PoleSpec
from sed.bench.fusion_procs import FeedListener, NodeProcess, SenderProcesses, free_port
from sed.config import TransportSection
from sed.errors import ConfigError
from sed.keys import NetworkKeys, load_public_key
from sed.units import NS_PER_S

#: Poles one sender process serves by default (one offers 2,150 detections/s from 1,000 poles on ~0.2 cores).
POLES_PER_SENDER = 1000
#: The first detection is sent this long after every pole is ready, s (each sender encodes its share).
LEAD_S = 0.5
MIB_PER_KIB = 1 / 1024


class HeardDetection(Protocol):
    """What :func:`replay_over_curve` needs of each scenario entry (``sed.bench.fusion_sim.Heard``)."""

    @property
    def detection(self) -> wire.Detection: ...

    @property
    def received_at_ns(self) -> int: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class DetectionTiming:
    """One detection's trip, in the scenario's time base (ns); ``acked_ns`` None: never acknowledged."""

    detection_id: str
    sensor_id: str
    due_ns: int
    sent_ns: int | None
    acked_ns: int | None
    attempts: int
    rejected: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class IncidentUpdate:
    """An incident as the feed announced it; ``received_ns`` and its times in the scenario's time base."""

    received_ns: int
    incident: wire.Incident


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeUsage:
    """The node process: CPU s during the replay (start of the first send to the end of the settle) and
    in all, peak resident memory (KiB), and its exit code after SIGTERM (None: it had to be killed)."""

    cpu_s_replay: float
    cpu_s_total: float
    peak_rss_kib: int
    exit_code: int | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransportReport:
    """What one :func:`replay_over_curve` measured; :meth:`summary` is its JSON-ready digest."""

    settings: dict[str, Any]
    offset_ns: int
    detections: list[DetectionTiming]
    incident_updates: list[IncidentUpdate]
    node: NodeUsage
    senders: list[dict[str, Any]]
    feed_undecodable: int
    stored_detections: int

    @property
    def never_acked(self) -> list[str]:
        return [d.detection_id for d in self.detections if d.acked_ns is None]

    def ack_latency_ms(self) -> dict[str, float | int | None]:
        """Send (first attempt) -> ack over the acknowledged detections, ms."""
        return _percentiles_ms(
            [d.acked_ns - d.sent_ns for d in self.detections if d.acked_ns is not None and d.sent_ns is not None]
        )

    def acked_per_s(self) -> float | None:
        """Acknowledged detections per second over the busy period (first send to last ack)."""
        acked = [d.acked_ns for d in self.detections if d.acked_ns is not None]
        sent = [d.sent_ns for d in self.detections if d.sent_ns is not None]
        if not acked or not sent or max(acked) <= min(sent):
            return None
        return len(acked) / ((max(acked) - min(sent)) / NS_PER_S)

    def first_update_latency_ms(self, *, located: bool = False) -> dict[str, float | int | None]:
        """Per incident: the earliest due time of the detections its first update names -> that update
        received (with ``located``: -> its first update with a position), ms. Ground truth free; the
        scorer's first-alert figures start at the sound's first detection instead."""
        due = {d.detection_id: d.due_ns for d in self.detections}
        first: dict[str, int] = {}
        delays: list[int] = []
        for update in sorted(self.incident_updates, key=lambda u: u.received_ns):
            incident = update.incident
            start = first.setdefault(
                incident.incident_id, min((due[i] for i in incident.detection_ids if i in due), default=-1)
            )
            if start < 0 or (located and incident.position is None):
                continue
            first[incident.incident_id] = -1  # counted once
            delays.append(update.received_ns - start)
        return _percentiles_ms(delays)

    def summary(self) -> dict[str, Any]:
        acked_per_s = self.acked_per_s()
        return {
            "settings": self.settings,
            "detections": len(self.detections),
            "acked": len(self.detections) - len(self.never_acked),
            "never_acked": len(self.never_acked),
            "rejected": sum(d.rejected is not None for d in self.detections),
            "resent": sum(d.attempts > 1 for d in self.detections),
            "acked_per_s": None if acked_per_s is None else round(acked_per_s, 1),
            "send_to_ack_ms": self.ack_latency_ms(),
            "first_update_ms": self.first_update_latency_ms(),
            "first_located_ms": self.first_update_latency_ms(located=True),
            "incidents": len({u.incident.incident_id for u in self.incident_updates}),
            "incident_updates": len(self.incident_updates),
            "feed_undecodable": self.feed_undecodable,
            "stored_detections": self.stored_detections,
            "node_cpu_s_replay": round(self.node.cpu_s_replay, 2),
            "node_cpu_ms_per_detection": round(1000 * self.node.cpu_s_replay / max(len(self.detections), 1), 3),
            "node_peak_rss_mib": round(self.node.peak_rss_kib * MIB_PER_KIB, 1),
            "node_exit_code": self.node.exit_code,
            "senders": self.senders,
        }


def replay_over_curve(
    heard: Sequence[HeardDetection],
    poles: Mapping[str, tuple[float, float, float]],
    *,
    store_url: str,
    workdir: Path,
    senders: int | None = None,
    timeout_s: float = 120.0,
    settle_s: float = 3.0,
    fusion: Mapping[str, Any] | None = None,
    site: Mapping[str, Any] | None = None,
    heartbeat_interval_s: float | None = TransportSection.model_fields["heartbeat_interval_s"].default,
) -> TransportReport:
    """Replay ``heard`` in real time from ``poles`` through CURVE into a ``sed fusion`` process.

    Parameters
    ----------
    heard : sequence of HeardDetection
        Each detection and when it reaches the node (when its pole sends it), scenario ns.
    poles : mapping of str to (x, y, z)
        Every pole's id and position, m (each gets a key pair and sends heartbeats from it).
    store_url : str
        The node's ``[store] url``: an empty database (see :func:`scratch_database`).
    workdir : Path
        A new or empty folder for keys, the config, the node's log and the SQLite file.
    senders : int > 0, optional
        Sender processes (default: one per :data:`POLES_PER_SENDER` poles).
    timeout_s : float > 0
        After the last scheduled send, how long acks and the feed's quiet may take, s.
    settle_s : float > 0
        The replay ends once every detection is acknowledged and no incident update came for this long, s.
    fusion, site : mapping, optional
        Extra keys of the node's ``[fusion]`` and ``[site]`` sections.
    heartbeat_interval_s : float > 0 or None
        Every pole's heartbeat interval, s (None: only the one at connection).

    Raises
    ------
    ConfigError
        An argument out of range, a detection from a pole not in ``poles``, a non-empty ``workdir``,
        or a node or sender process that does not start or exits early (its log's tail quoted).
    """
    for name, value, ok in (
        ("senders", senders, senders is None or senders >= 1),
        ("timeout_s", timeout_s, timeout_s > 0),
        ("settle_s", settle_s, settle_s > 0),
        ("heartbeat_interval_s", heartbeat_interval_s, heartbeat_interval_s is None or heartbeat_interval_s > 0),
    ):
        if not ok:
            raise ConfigError(f"replay_over_curve: {name} = {value!r}; expected a number > 0")
    schedule = sorted(heard, key=lambda h: h.received_at_ns)
    if not schedule:
        raise ConfigError("replay_over_curve: heard is empty; expected at least one detection")
    unknown = sorted({h.detection.sensor_id for h in schedule} - set(poles))
    if unknown:
        raise ConfigError(f"replay_over_curve: detections from poles {unknown[:5]} not in poles ({len(poles)} given)")
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise ConfigError(f"{workdir}: not empty; replay_over_curve needs a fresh workdir")
    n_senders = senders or max(1, -(-len(poles) // POLES_PER_SENDER))
    keys = NetworkKeys.create(workdir, sorted(poles))
    fusion_port, feed_port = free_port(), free_port()
    config = {
        "site": dict(site or {}),
        "fusion": {
            **dict(fusion or {}),
            "bind_endpoint": f"tcp://127.0.0.1:{fusion_port}",
            "secret_key_file": str(keys.fusion_secret_key_file),
            "authorized_keys_dir": str(keys.authorized_keys_dir),
        },
        "api": {"incident_feed_endpoint": f"tcp://127.0.0.1:{feed_port}"},
        "store": {"url": store_url},
    }
    transport = TransportSection.model_fields
    settings = {
        "poles": len(poles),
        "detections": len(schedule),
        "offered_s": round((schedule[-1].received_at_ns - schedule[0].received_at_ns) / NS_PER_S, 3),
        "sender_processes": n_senders,
        "store": store_url.partition(":")[0],
        "fusion": dict(fusion or {}),
        "site": dict(site or {}),
        "heartbeat_interval_s": heartbeat_interval_s,
        "resend_initial_s": transport["resend_initial_s"].default,
        "resend_max_s": transport["resend_max_s"].default,
        "timeout_s": timeout_s,
        "settle_s": settle_s,
    }
    with contextlib.ExitStack() as stack:
        node = stack.enter_context(NodeProcess.start(workdir, config, ports=(fusion_port, feed_port)))
        feed = stack.enter_context(FeedListener(f"tcp://127.0.0.1:{feed_port}"))
        specs = _pole_specs(schedule, poles, keys, n_senders)
        workers = stack.enter_context(
            SenderProcesses(
                specs,
                endpoint=f"tcp://127.0.0.1:{fusion_port}",
                workdir=workdir,
                server_public_key=load_public_key(keys.fusion_public_key_file),
                heartbeat_interval_s=heartbeat_interval_s,
            )
        )
        workers.wait_ready(node)
        cpu_before_s = node.sample().cpu_s
        t0_ns = time.time_ns() + round(LEAD_S * NS_PER_S)
        offset_ns = t0_ns - schedule[0].received_at_ns
        last_due_wall_ns = schedule[-1].received_at_ns + offset_ns
        deadline_ns = last_due_wall_ns + round(timeout_s * NS_PER_S)
        results = workers.run(node, offset_ns=offset_ns, deadline_ns=deadline_ns)
        feed.wait_quiet(quiet_s=settle_s, deadline_ns=deadline_ns)
        final = node.sample()
        exit_code = node.stop()
        usage = NodeUsage(
            cpu_s_replay=final.cpu_s - cpu_before_s,
            cpu_s_total=final.cpu_s,
            peak_rss_kib=final.peak_rss_kib,
            exit_code=exit_code,
        )
        updates = feed.take()
    stored_detections = _count_stored(store_url)
    timings = [_timing(h, results.get(h.detection.detection_id), offset_ns) for h in schedule]
    return TransportReport(
        settings=settings,
        offset_ns=offset_ns,
        detections=timings,
        incident_updates=[_shift_back(received_ns, incident, offset_ns) for received_ns, incident in updates],
        node=usage,
        senders=workers.stats,
        feed_undecodable=feed.undecodable,
        stored_detections=stored_detections,
    )


@contextlib.contextmanager
def scratch_database(url: str | None, workdir: Path) -> Iterator[str]:
    """An empty store URL for one run: a SQLite file in ``workdir`` when ``url`` is None or SQLite,
    else a fresh schema on the PostgreSQL server ``url`` names, dropped afterwards."""
    if url is None or url.startswith("sqlite"):
        yield url or f"sqlite:///{workdir / 'fusion.sqlite'}"
        return
    import sqlalchemy as sa

    schema = f"fusion_e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _count_stored(store_url: str) -> int:
    """Detections the store holds after the node stopped (every acknowledged one must be there)."""
    from sed.store import Store  # SQLAlchemy and the migrations: only once the run is over

    store = Store(store_url)
    try:
        return store.count_detections()
    finally:
        store.close()


def _pole_specs(
    schedule: Sequence[HeardDetection], poles: Mapping[str, tuple[float, float, float]], keys: NetworkKeys, n: int
) -> list[list[PoleSpec]]:
    """The poles dealt round-robin over ``n`` sender processes, each with its detections (scenario ns)."""
    by_pole: dict[str, list[tuple[int, wire.Detection]]] = {pole: [] for pole in poles}
    for h in schedule:
        by_pole[h.detection.sensor_id].append((h.received_at_ns, h.detection))
    specs: list[list[PoleSpec]] = [[] for _ in range(n)]
    for k, pole in enumerate(sorted(poles)):
        spec = PoleSpec(
            sensor_id=pole,
            secret_key_file=str(keys.sensor_secret_key_files[pole]),
            position_m=tuple(float(v) for v in poles[pole]),
            detections=by_pole[pole],
        )
        specs[k % n].append(spec)
    return [s for s in specs if s]


def _timing(h: HeardDetection, result: tuple[int, int, int, str] | None, offset_ns: int) -> DetectionTiming:
    sent_ns, acked_ns, attempts, rejected = result or (0, 0, 0, "")
    return DetectionTiming(
        detection_id=h.detection.detection_id,
        sensor_id=h.detection.sensor_id,
        due_ns=h.received_at_ns,
        sent_ns=sent_ns - offset_ns if sent_ns else None,
        acked_ns=acked_ns - offset_ns if acked_ns else None,
        attempts=attempts,
        rejected=rejected or None,
    )


def _shift_back(received_ns: int, incident: wire.Incident, offset_ns: int) -> IncidentUpdate:
    """The update and the incident's own times in the scenario's time base (see the module docstring)."""
    incident = msgspec.structs.replace(
        incident,
        origin_time_ns=max(incident.origin_time_ns - offset_ns, 0),
        created_at_ns=max(incident.created_at_ns - offset_ns, 0),
    )
    return IncidentUpdate(received_ns=received_ns - offset_ns, incident=incident)


def _percentiles_ms(values_ns: Sequence[int]) -> dict[str, float | int | None]:
    if not values_ns:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    array = np.asarray(values_ns, dtype=np.float64) / 1e6
    return {
        "n": len(values_ns),
        "p50": round(float(np.percentile(array, 50)), 2),
        "p99": round(float(np.percentile(array, 99)), 2),
        "max": round(float(array.max()), 2),
    }


__all__ = [
    "POLES_PER_SENDER",
    "DetectionTiming",
    "HeardDetection",
    "IncidentUpdate",
    "NodeUsage",
    "TransportReport",
    "replay_over_curve",
    "scratch_database",
]
