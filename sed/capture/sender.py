"""Sensor side of the link: drains the outbox to the fusion node over CURVE-secured ZeroMQ.

A DEALER socket (CURVE client) connects to the fusion node's ROUTER. Durable messages
(detections, evidence clips) go through the :class:`~sed.capture.outbox.Outbox` and are
resent with back-off until an :class:`~sed.wire.Ack` names them, or a
:class:`~sed.wire.Reject` does (the node will never accept them: they are dropped with
one logged error and counted, never resent); heartbeats are sent best-effort.
``ZMQ_IMMEDIATE`` keeps ZeroMQ from queueing into a connection that does not exist, so
the outbox stays the only queue.

Every pending message is resent at once only when the link comes (back) up: a completed
CURVE handshake, seen on the socket's monitor (the first connection, or a reconnection
after the node restarted or the network broke; ZeroMQ heartbeats notice a peer that went
silent). An ack never does it: a node that is merely slow to answer gets the outbox's
jittered, doubling back-off, not every pole's whole backlog again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.utils.monitor

from sed import wire
from sed.capture.outbox import Outbox
from sed.errors import WireError
from sed.keys import load_keypair, load_public_key

log = logging.getLogger("sed.sensor.sender")

#: How often the sender thread wakes when idle, s.
POLL_INTERVAL_S = 0.02
#: Retry delay of a heartbeat that found no connection, ns.
HEARTBEAT_RETRY_NS = 200_000_000
#: ZeroMQ pings the node this often, and drops a connection that has not answered for the timeout, ms.
ZMQ_HEARTBEAT_IVL_MS = 2000
ZMQ_HEARTBEAT_TIMEOUT_MS = 10_000
#: The socket events that say the link went up or down.
_LINK_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


def pole_socket(
    context: zmq.Context, public_key: bytes, secret_key: bytes, server_public_key: bytes, *, endpoint: str
) -> zmq.Socket:
    """A pole's CURVE DEALER to the fusion node, connected: no queueing into a missing connection
    (the outbox is the only queue), fast reconnects, ZeroMQ heartbeats that notice a silent node."""
    sock = context.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public_key, secret_key, server_public_key
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.HEARTBEAT_IVL, ZMQ_HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMQ_HEARTBEAT_TIMEOUT_MS)
    sock.connect(endpoint)
    return sock


@dataclasses.dataclass
class SenderStats:
    sent: int = 0
    acked: int = 0
    rejected: int = 0  # durable messages the fusion node refused for good, dropped from the outbox
    send_failures: int = 0
    bad_replies: int = 0
    links_up: int = 0  # completed handshakes: the first connection and every reconnection


class Sender:
    """Owns the DEALER socket in a thread of its own.

    Parameters
    ----------
    endpoint : str
        Fusion node endpoint, e.g. ``tcp://127.0.0.1:5750``.
    secret_key_file : Path
        This sensor's ``.key_secret``.
    server_public_key_file : Path
        The fusion node's ``.key``.
    outbox : Outbox
    heartbeat : callable returning a Heartbeat or a list of them, optional
        Called every ``heartbeat_interval_s`` (a sensor with several streams sends one per stream).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        secret_key_file: Path,
        server_public_key_file: Path,
        outbox: Outbox,
        heartbeat: Callable[[], wire.Heartbeat | list[wire.Heartbeat]] | None = None,
        heartbeat_interval_s: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.outbox = outbox
        self.stats = SenderStats()
        self._keys = (load_keypair(secret_key_file), load_public_key(server_public_key_file))
        self.heartbeat = heartbeat  # may be set after construction, before start()
        self._heartbeat_interval_ns = int(heartbeat_interval_s * 1e9)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_deadline_ns = 0
        self._thread = threading.Thread(target=self._run, name="sed-sender", daemon=True)
        self.last_reply_ns = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, message: wire.Detection | wire.EvidenceClip) -> None:
        """Persist a durable message and wake the sender; returns once it is on disk."""
        self.outbox.put(wire.message_id(message), wire.encode(message))
        self._wake.set()

    def stop(self, *, flush_timeout_s: float = 2.0) -> None:
        """Try to deliver what is pending for up to ``flush_timeout_s``, then close.

        Whatever is still unacknowledged stays in the outbox for the next start.
        """
        self._flush_deadline_ns = time.time_ns() + int(flush_timeout_s * 1e9)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=flush_timeout_s + 5.0)

    def _socket(self, context: zmq.Context) -> zmq.Socket:
        (public, secret), server_public = self._keys
        return pole_socket(context, public, secret, server_public, endpoint=self.endpoint)

    def _run(self) -> None:
        context = zmq.Context()
        sock = self._socket(context)
        monitor = sock.get_monitor_socket(_LINK_EVENTS)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        next_heartbeat_ns = 0
        try:
            while True:
                now = time.time_ns()
                if self._stop.is_set() and (now >= self._flush_deadline_ns or self.outbox.depth() == 0):
                    break
                if self.heartbeat is not None and now >= next_heartbeat_ns and not self._stop.is_set():
                    beats = self.heartbeat()
                    beats = beats if isinstance(beats, list) else [beats]
                    sent = all([self._send(sock, wire.encode(beat), durable=False) for beat in beats])
                    # Not connected yet: try again soon rather than a whole interval later.
                    next_heartbeat_ns = now + (self._heartbeat_interval_ns if sent else HEARTBEAT_RETRY_NS)
                for _, payload in self.outbox.due(now_ns=now):
                    if not self._send(sock, payload, durable=True):
                        break
                ready = dict(poller.poll(int(POLL_INTERVAL_S * 1000)))
                if monitor in ready:
                    self._link_events(monitor)
                if sock in ready:
                    self._receive(sock)
                self._wake.clear()
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
            context.term()

    def _send(self, sock: zmq.Socket, payload: bytes, *, durable: bool) -> bool:
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            # No connected, authenticated peer: the outbox keeps the message for a resend.
            self.stats.send_failures += 1
            return False
        except zmq.ZMQError as exc:
            self.stats.send_failures += 1
            log.warning("send to %s failed: %s", self.endpoint, exc)
            return False
        if durable:
            self.stats.sent += 1
        return True

    def _link_events(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                event = zmq.utils.monitor.recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.stats.links_up += 1
                log.info("link to %s up; resending what is pending", self.endpoint)
                # The node is (back): what it did not ack may be lost with its old connection, and
                # sends that found no connection have backed off meanwhile. Resend without waiting.
                self.outbox.retry_all_now()
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                log.info("link to %s down; the outbox keeps what is pending", self.endpoint)

    def _receive(self, sock: zmq.Socket) -> None:
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_reply_ns = time.time_ns()
            try:
                message = wire.decode(data)
            except WireError as exc:
                self.stats.bad_replies += 1
                log.warning("bad reply from %s: %s", self.endpoint, exc)
                continue
            if isinstance(message, wire.Ack):
                self.stats.acked += self.outbox.remove(list(message.message_ids))
            elif isinstance(message, wire.Reject):
                self._rejected(message)

    def _rejected(self, reject: wire.Reject) -> None:
        removed = self.outbox.remove(list(reject.message_ids))
        self.stats.rejected += removed
        if removed:  # a repeated reject of messages already dropped says nothing new
            log.error(
                "fusion node %s rejected %s for good (%s); dropped, never resent",
                self.endpoint,
                ", ".join(repr(m) for m in reject.message_ids),
                reject.reason,
            )


__all__ = ["Sender", "SenderStats", "pole_socket"]
