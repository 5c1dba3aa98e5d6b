"""Live push: every committed or reviewed incident goes to each connected dashboard at once.

Every update of an incident is pushed under its ``incident_id``: the provisional first
alert, each refinement, the final ``located`` or ``unlocated`` stage and a ``merged``
one (which a client removes; its detections now belong to ``merged_into``). Each carries
its ``revision``; a client keeps the highest it has seen per incident and drops older
ones. An update is read back from the store when it is pushed, so two announcements in
quick succession may both carry the newer state: revisions never go down.

The fusion node (in-process, via ``on_incident``) or a ZeroMQ subscription to a separate
``sed fusion`` (:class:`FeedSubscriber`) announces incident ids; one worker thread reads
each incident back from the store (so the pushed status is the reviewed one), serialises
it once and hands it to every subscriber's asyncio queue, to the webhook dispatcher and to
the metrics. ``GET /api/live`` streams the queue as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable

import zmq

from sed import wire
from sed.api.schemas import IncidentOut, incident_out
from sed.config import SiteSection
from sed.errors import WireError
from sed.store import Store
from sed.supervise import TURN_S, Liveness

log = logging.getLogger("sed.api.live")

#: Events a slow client may fall behind by before it is disconnected (it reconnects and reloads).
SUBSCRIBER_QUEUE_EVENTS = 1000
#: How often the subscriber thread checks for shutdown, ms.
SUBSCRIBER_POLL_MS = 100

Listener = Callable[[wire.Incident, IncidentOut], None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LiveEvent:
    """One Server-Sent Event: ``event: incident`` with the incident as JSON."""

    sequence: int
    incident_id: str
    data: str  # JSON of {"incident": IncidentOut, "announced_at_ns": int}

    def encode(self) -> bytes:
        return f"id: {self.sequence}\nevent: incident\ndata: {self.data}\n\n".encode()


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(SUBSCRIBER_QUEUE_EVENTS)

    def offer(self, event: LiveEvent | None) -> None:
        """Runs on the subscriber's event loop."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # too slow: end its stream; the dashboard reconnects and reloads
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class IncidentFeed:
    """Fan-out of incident announcements to live clients and listeners.

    Parameters
    ----------
    store : Store
    site : SiteSection
        For positions in latitude/longitude.
    """

    def __init__(self, store: Store, site: SiteSection) -> None:
        self.store = store
        self.site = site
        self.listeners: list[Listener] = []
        self._announced: queue.Queue[str | None] = queue.Queue()
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self._sequence = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        #: For ``/healthz``: the worker's last turn and the announcements waiting.
        self.liveness = Liveness("live-feed", backlog=self._announced.qsize)

    def start(self) -> None:
        self._thread = self.liveness.start(self._run, thread_name="sed-live-feed")

    def announce(self, incident_id: str) -> None:
        """An incident was committed or reviewed (thread-safe, returns at once)."""
        self._announced.put(incident_id)

    def announce_incident(self, incident: wire.Incident) -> None:
        """``on_incident`` callback of the fusion node."""
        self.announce(incident.incident_id)

    def subscribe(self) -> _Subscriber:
        """A new live client on the running event loop."""
        subscriber = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                subscriber.queue.put_nowait(None)
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def n_subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every live stream and the worker (so the HTTP server can shut down)."""
        self.liveness.stopping()
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop is already closed
                subscriber.loop.call_soon_threadsafe(subscriber.offer, None)
        self._announced.put(None)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            self.liveness.beat()
            try:
                incident_id = self._announced.get(timeout=TURN_S)  # turn (and beat) even when idle
            except queue.Empty:
                continue
            if incident_id is None:
                return
            try:
                self._publish(incident_id)
            except Exception:  # a failing read must not end live push for everyone
                log.exception("announcing incident %s failed", incident_id)

    def _publish(self, incident_id: str) -> None:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            log.warning("announced incident %s is not in the store", incident_id)
            return
        out = incident_out(incident, self.site)
        self._sequence += 1
        payload = {"incident": out.model_dump(mode="json"), "announced_at_ns": time.time_ns()}
        event = LiveEvent(sequence=self._sequence, incident_id=incident_id, data=json.dumps(payload))
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            with contextlib.suppress(RuntimeError):
                subscriber.loop.call_soon_threadsafe(subscriber.offer, event)
        for listener in self.listeners:
            try:
                listener(incident, out)
            except Exception:
                log.exception("incident listener %s failed", listener)


class FeedSubscriber:
    """Follows a separate fusion node's incident PUB socket and announces what it commits.

    Parameters
    ----------
    endpoint : str
        The fusion node's ``api.incident_feed_endpoint``.
    feed : IncidentFeed
    """

    def __init__(self, endpoint: str, feed: IncidentFeed) -> None:
        self.endpoint = endpoint
        self.feed = feed
        self.n_received = 0
        self.n_bad = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: For ``/healthz``: the subscriber's last turn.
        self.liveness = Liveness("feed-subscriber")

    def start(self) -> None:
        self._thread = self.liveness.start(self._run, thread_name="sed-feed-sub")

    def stop(self) -> None:
        self.liveness.stopping()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self.endpoint)
        log.info("following incidents from %s", self.endpoint)
        try:
            while not self._stop.is_set():
                self.liveness.beat()
                if not sock.poll(SUBSCRIBER_POLL_MS, zmq.POLLIN):
                    continue
                try:
                    message = wire.decode(sock.recv(zmq.NOBLOCK))
                except WireError as exc:
                    self.n_bad += 1
                    log.warning("bad message on %s: %s", self.endpoint, exc)
                    continue
                if isinstance(message, wire.Incident):
                    self.n_received += 1
                    self.feed.announce(message.incident_id)
        finally:
            sock.close(linger=0)
            context.term()


__all__ = ["FeedSubscriber", "IncidentFeed", "LiveEvent"]
