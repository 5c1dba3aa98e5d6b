"""Many simulated poles in one process, each a CURVE DEALER speaking the sensor's side of the wire.

:func:`run_poles` is the body of one sender process of :func:`sed.bench.fusion_e2e.replay_over_curve`.
Every pole behaves as :class:`~sed.capture.sender.Sender` does on the wire: its own key pair
and connection (``ZMQ_IMMEDIATE``, so nothing queues into a connection that does not exist),
a :class:`~sed.wire.Heartbeat` with its position when the handshake completes and every
``heartbeat_interval_s``, each detection sent when due and resent with the sensor's back-off
(``transport.resend_initial_s`` doubling to ``transport.resend_max_s``) until an
:class:`~sed.wire.Ack` or :class:`~sed.wire.Reject` names it. What it leaves out is the
durable outbox (an fsync per message, the pole's cost, not the node's) and a thread per pole:
one loop serves every pole of the process.

Run as ``python -m sed.bench.fusion_poles --fd N --spec PATH`` (a child process, not
``multiprocessing``: spawn would import the caller's ``__main__`` again). ``PATH`` is a pickle
of the keyword arguments of :func:`run_poles` but ``conn``; the parent talks over the inherited
socket ``N``: ``("ready", n)`` once every handshake is done (or
``("failed", why)``), then ``("go", offset_ns, deadline_ns)``; the replay runs until every
detection is answered or ``deadline_ns`` (wall clock), and the process sends ``("done", rows,
stats)``: per detection ``(id, first send ns, ack ns or 0, attempts, reject reason or "")``,
wall clock. ``("stop",)`` at any time ends it.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import pickle
import resource
import time
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec
import zmq

from sed import wire
from sed.capture.sender import pole_socket
from sed.config import TransportSection
from sed.keys import load_keypair
from sed.units import NS_PER_S

#: Longest one poll waits, ms (the parent's socket is polled too, so a stop wakes it at once).
MAX_POLL_MS = 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoleSpec:
    """One pole: its key, position (m) and detections as ``(due scenario ns, detection)``."""

    sensor_id: str
    secret_key_file: str
    position_m: tuple[float, ...]
    detections: list[tuple[int, wire.Detection]]


def run_poles(
    *,
    conn: Connection,
    poles: list[PoleSpec],
    endpoint: str,
    server_public_key: bytes,
    heartbeat_interval_s: float | None,
    connect_timeout_s: float,
) -> None:
    """Serve ``poles`` until the replay is done or the parent says stop (see the module docstring)."""
    context = zmq.Context()
    context.max_sockets = len(poles) + 64
    sockets: dict[str, zmq.Socket] = {}
    try:
        for pole in poles:
            sockets[pole.sensor_id] = _dealer(context, pole, endpoint=endpoint, server_public_key=server_public_key)
        if not _handshake(poles, sockets, conn, timeout_s=connect_timeout_s):
            return
        command = conn.recv()
        if command[0] != "go":
            return
        _, offset_ns, deadline_ns = command
        cpu_before_s = _cpu_s()
        loop = _Loop(poles, sockets, offset_ns=offset_ns, heartbeat_interval_s=heartbeat_interval_s)
        loop.run(conn, deadline_ns=deadline_ns)
        conn.send(("done", loop.rows(), {**loop.stats(), "cpu_s_replay": round(_cpu_s() - cpu_before_s, 2)}))
    except (EOFError, BrokenPipeError):  # the parent is gone: nothing left to report to
        pass
    finally:
        for sock in sockets.values():
            sock.close(linger=0)
        context.term()


def _cpu_s() -> float:
    """User + system CPU of this process so far (every thread, ZeroMQ's I/O thread too), s."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _dealer(context: zmq.Context, pole: PoleSpec, *, endpoint: str, server_public_key: bytes) -> zmq.Socket:
    public, secret = load_keypair(Path(pole.secret_key_file))
    return pole_socket(context, public, secret, server_public_key, endpoint=endpoint)  # the sensor's own socket


def _heartbeat(pole: PoleSpec, now_ns: int) -> bytes:
    x_m, y_m, z_m = pole.position_m
    return wire.encode(
        wire.Heartbeat(
            sensor_id=pole.sensor_id,
            sent_at_ns=now_ns,
            clock_status=wire.ClockStatus.SYNCED,
            position=wire.Position(x_m=x_m, y_m=y_m, z_m=z_m),
        )
    )


def _handshake(poles: list[PoleSpec], sockets: dict[str, zmq.Socket], conn: Connection, *, timeout_s: float) -> bool:
    """Send each pole's first heartbeat once its connection can take it (POLLOUT under ``ZMQ_IMMEDIATE``
    means the CURVE handshake completed); ``("ready", n)`` or ``("failed", why)`` to the parent."""
    waiting = {pole.sensor_id: pole for pole in poles}
    poller = zmq.Poller()
    for sensor_id in waiting:
        poller.register(sockets[sensor_id], zmq.POLLOUT)
    by_socket = {sockets[p.sensor_id]: p for p in poles}
    deadline = time.monotonic() + timeout_s
    while waiting:
        if time.monotonic() > deadline:
            conn.send(("failed", f"{len(waiting)} poles not connected after {timeout_s:.0f} s: {sorted(waiting)[:5]}"))
            return False
        if conn.poll():
            return False  # told to stop
        for sock, _ in poller.poll(MAX_POLL_MS):
            pole = by_socket[sock]
            try:
                sock.send(_heartbeat(pole, time.time_ns()), zmq.NOBLOCK)
            except zmq.Again:
                continue
            poller.unregister(sock)
            del waiting[pole.sensor_id]
    conn.send(("ready", len(poles)))
    return True


class _Loop:
    """Due sends, resends with back-off, heartbeats and replies of every pole, in one thread."""

    def __init__(
        self,
        poles: list[PoleSpec],
        sockets: dict[str, zmq.Socket],
        *,
        offset_ns: int,
        heartbeat_interval_s: float | None,
    ) -> None:
        self.poles = {p.sensor_id: p for p in poles}
        self.sockets = sockets
        transport = TransportSection.model_fields
        self.resend_initial_ns = round(transport["resend_initial_s"].default * NS_PER_S)
        self.resend_max_ns = round(transport["resend_max_s"].default * NS_PER_S)
        self.heartbeat_ns = None if heartbeat_interval_s is None else round(heartbeat_interval_s * NS_PER_S)
        # Encoded before the first is due: the shift to the wall clock keeps every difference.
        self.due = sorted(
            (
                due_ns + offset_ns,
                d.detection_id,
                d.sensor_id,
                wire.encode(msgspec.structs.replace(d, arrival_time_ns=d.arrival_time_ns + offset_ns)),
            )
            for p in poles
            for due_ns, d in p.detections
        )
        self.pending: dict[str, tuple[str, bytes]] = {}  # unanswered: id -> (sensor id, payload)
        # Only poles with an unanswered detection are polled: a poll over every socket of 500 poles,
        # a thousand times a second, would cost this process more than the node its work.
        self.poller = zmq.Poller()
        self.unanswered: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.resends: list[tuple[int, str]] = []  # (next attempt ns, id); stale entries skipped
        self.sent_ns: dict[str, int] = {}
        self.acked_ns: dict[str, int] = {}
        self.rejected: dict[str, str] = {}
        self.lag_ns: list[int] = []
        self.counts = {"heartbeats": 0, "send_failures": 0, "undecodable_replies": 0, "resends": 0}

    def run(self, conn: Connection, *, deadline_ns: int) -> None:
        by_socket = {sock: sensor_id for sensor_id, sock in self.sockets.items()}
        now_ns = time.time_ns()
        # Staggered over one interval after the handshake's heartbeat, as poles started at different times are.
        step_ns = (self.heartbeat_ns or 0) // max(len(self.poles), 1)
        beats = [(now_ns + (self.heartbeat_ns or 0) + k * step_ns, s) for k, s in enumerate(self.poles)]
        # The parent's socket is polled too: a stop wakes the loop, and the poller is never empty
        # (pyzmq returns at once from a poll over nothing, whatever the timeout).
        self.poller.register(conn.fileno(), zmq.POLLIN)
        i = 0
        while now_ns < deadline_ns and (i < len(self.due) or self.pending):
            while i < len(self.due) and self.due[i][0] <= now_ns:
                due_ns, detection_id, sensor_id, payload = self.due[i]
                self.lag_ns.append(now_ns - due_ns)
                self.sent_ns[detection_id] = now_ns
                self.pending[detection_id] = (sensor_id, payload)
                self.unanswered[sensor_id] = self.unanswered.get(sensor_id, 0) + 1
                if self.unanswered[sensor_id] == 1:
                    self.poller.register(self.sockets[sensor_id], zmq.POLLIN)
                self._attempt(detection_id, now_ns)
                i += 1
            while self.resends and self.resends[0][0] <= now_ns:
                _, detection_id = heapq.heappop(self.resends)
                if detection_id in self.pending:
                    self.counts["resends"] += 1
                    self._attempt(detection_id, now_ns)
            while self.heartbeat_ns and beats[0][0] <= now_ns:
                _, sensor_id = beats[0]
                self._send(sensor_id, _heartbeat(self.poles[sensor_id], now_ns))
                self.counts["heartbeats"] += 1
                heapq.heapreplace(beats, (now_ns + self.heartbeat_ns, sensor_id))
            wake_ns = min(
                self.due[i][0] if i < len(self.due) else deadline_ns,
                self.resends[0][0] if self.resends else deadline_ns,
                beats[0][0] if self.heartbeat_ns else deadline_ns,
            )
            # Rounded up: a poll of 0 ms while the next send is under 1 ms away would spin the core the node needs.
            timeout_ms = min(max(-((time.time_ns() - wake_ns) // 1_000_000), 0), MAX_POLL_MS)
            for sock, _ in self.poller.poll(timeout_ms):
                if sock == conn.fileno():
                    return  # told to stop
                self._replies(sock, by_socket[sock])
            now_ns = time.time_ns()

    def _send(self, sensor_id: str, payload: bytes) -> bool:
        try:
            self.sockets[sensor_id].send(payload, zmq.NOBLOCK)
        except zmq.ZMQError:  # no connection right now: like the outbox, the resend schedule retries
            self.counts["send_failures"] += 1
            return False
        return True

    def _attempt(self, detection_id: str, now_ns: int) -> None:
        sensor_id, payload = self.pending[detection_id]
        self._send(sensor_id, payload)
        attempts = self.attempts[detection_id] = self.attempts.get(detection_id, 0) + 1
        delay_ns = min(self.resend_initial_ns << min(attempts - 1, 30), self.resend_max_ns)
        heapq.heappush(self.resends, (now_ns + delay_ns, detection_id))

    def _replies(self, sock: zmq.Socket, sensor_id: str) -> None:
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            now_ns = time.time_ns()
            try:
                reply = wire.decode(data)
            except Exception:  # counted, never fatal: one bad reply must not end a pole
                self.counts["undecodable_replies"] += 1
                continue
            if isinstance(reply, wire.Ack | wire.Reject):
                for message_id in reply.message_ids:
                    if self.pending.pop(message_id, None) is None:
                        continue  # a second answer to a resend
                    self.unanswered[sensor_id] -= 1
                    if not self.unanswered[sensor_id]:
                        self.poller.unregister(sock)
                    if isinstance(reply, wire.Ack):
                        self.acked_ns[message_id] = now_ns
                    else:
                        self.rejected[message_id] = reply.reason

    def rows(self) -> list[tuple[str, int, int, int, str]]:
        return [
            (
                detection_id,
                self.sent_ns.get(detection_id, 0),
                self.acked_ns.get(detection_id, 0),
                self.attempts.get(detection_id, 0),
                self.rejected.get(detection_id, ""),
            )
            for _, detection_id, _, _ in self.due
        ]

    def stats(self) -> dict[str, object]:
        lag_ms = sorted(v / 1e6 for v in self.lag_ns)
        return {
            "poles": len(self.poles),
            **self.counts,
            "send_lag_ms_p99": round(lag_ms[int(0.99 * (len(lag_ms) - 1))], 2) if lag_ms else None,
            "send_lag_ms_max": round(lag_ms[-1], 2) if lag_ms else None,
            "cpu_s": round(_cpu_s(), 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description="one sender process of sed.bench.fusion_e2e")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the parent")
    parser.add_argument("--spec", type=Path, required=True, help="pickled keyword arguments of run_poles")
    args = parser.parse_args()
    kwargs = pickle.loads(args.spec.read_bytes())  # written by the parent process, never by a peer
    run_poles(conn=Connection(args.fd), **kwargs)


if __name__ == "__main__":
    main()
