"""Fusion side of the link: a CURVE-secured ROUTER that only moves wire messages.

Only sensors whose public key is in ``authorized_keys_dir`` complete the handshake; the
ZAP handler maps each key to the sensor id named by its file, and every message must
carry that sensor id or one of its stream ids ``<sensor id>.<suffix>`` (the channels of
a multi-microphone sensor) that is not itself a registered sensor: a sensor cannot speak
for another, nor for more than ``max_streams_per_sensor`` stream ids.

Nothing a sensor sends can stop the loop: oversized messages are cut by
``ZMQ_MAXMSGSIZE``; every other bad message is logged (one escaped line), counted in
:attr:`Receiver.stats` by reason, held for the node's quarantine table
(:meth:`Receiver.take_refused`) and dropped. A durable message (detection, clip) that
will never be accepted (invalid, spoofed, outside the site radius, one stream too many)
is answered with a :class:`~sed.wire.Reject` so the sensor stops resending it.

The key folder is re-read at most every ``keys_reread_s``: a deleted (revoked) or
replaced key is refused for new connections and its messages on an open connection are
dropped from then on. A junk file in the folder is skipped and listed in
:attr:`Receiver.problems`; the authenticator thread never dies on one.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import threading
import time
from pathlib import Path

import zmq
import zmq.auth.thread
import zmq.utils.z85

from sed import wire
from sed.config.server import DEFAULT_MAX_STREAMS_PER_SENSOR, DEFAULT_SITE_RADIUS_M
from sed.errors import WireError
from sed.keys import load_keypair, read_authorized_keys

log = logging.getLogger("sed.fusion.receiver")

#: The key folder is re-read at most this often, s: revocations take effect within it.
KEYS_REREAD_S = 2.0


class RejectReason(enum.StrEnum):
    """Why a message was dropped (the keys of :attr:`ReceiverStats.rejected_by_reason`)."""

    BAD_FRAMES = "bad_frames"  # not exactly routing id + one payload frame
    MALFORMED = "malformed"  # fails the wire schema
    REVOKED = "revoked"  # its key was deleted or replaced since the connection opened
    SPOOFED = "spoofed"  # claims a sensor id its key does not speak for
    OUTSIDE_SITE = "outside_site"  # a position beyond the site radius
    TOO_MANY_STREAMS = "too_many_streams"  # one stream id more than the sensor may have


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A decoded message with the connection it came from and the authenticated sensor."""

    routing_id: bytes
    sensor_id: str
    message: wire.Message


@dataclasses.dataclass(frozen=True)
class Refused:
    """A message the receiver refused, for the fusion node's quarantine table."""

    sensor_id: str
    reason: RejectReason
    detail: str
    message_id: str | None
    payload: bytes


#: Refused messages held for the node to take (:meth:`Receiver.take_refused`); beyond it they are only counted.
MAX_REFUSED_HELD = 1000


@dataclasses.dataclass
class ReceiverStats:
    """Counters of one receiver; read by the health endpoint."""

    received: int = 0
    rejected: int = 0
    acks_sent: int = 0
    rejects_sent: int = 0
    rejected_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)

    def count_rejected(self, reason: RejectReason) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason.value] = self.rejected_by_reason.get(reason.value, 0) + 1


@dataclasses.dataclass(frozen=True)
class _Registry:
    """One reading of the key folder; replaced whole, never changed, so threads share it safely."""

    keys: dict[bytes, str]
    sensor_ids: frozenset[str]
    problems: tuple[str, ...]


class _KeyRing:
    """ZAP credentials provider: known public key → sensor id (its key file's stem).

    Shared by the authenticator thread and the receive loop. Never raises: an exception
    here would kill the authenticator thread, and no sensor could connect again.
    """

    def __init__(self, directory: Path, *, reread_s: float) -> None:
        self.directory = directory
        self._reread_ns = int(reread_s * 1e9)
        self._lock = threading.Lock()
        self._read_at_ns = 0
        self.registry = _Registry(keys={}, sensor_ids=frozenset(), problems=())
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the folder if the last reading is older than ``reread_s`` (or ``force``)."""
        with self._lock:
            now = time.monotonic_ns()
            if not force and now - self._read_at_ns < self._reread_ns:
                return
            self._read_at_ns = now
            try:
                found = read_authorized_keys(self.directory)
            except Exception as exc:  # read_authorized_keys reports problems; this is the last guard
                log.exception("reading %s failed; keeping the keys read before", self.directory)
                self.registry = dataclasses.replace(self.registry, problems=(f"{self.directory}: {exc!r}",))
                return
            for problem in found.problems:
                if problem not in self.registry.problems:  # log a problem once, not every re-read
                    log.error("authorized keys: %s", problem)
            self.registry = _Registry(
                keys=found.keys, sensor_ids=frozenset(found.keys.values()), problems=tuple(found.problems)
            )

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: may this Z85 public key connect?"""
        try:
            if key not in self.registry.keys:
                self.refresh()  # a sensor may have been registered since
            allowed = key in self.registry.keys
            if not allowed:
                log.warning("refused CURVE key %r (not in %s)", key, self.directory)
            return allowed
        except Exception:
            log.exception("refused CURVE key %r: the key check failed", key)
            return False

    def user_id(self, key: bytes) -> str | None:
        """``"<sensor id> <Z85 key>"`` for a registered key, else ``None``."""
        sensor_id = self.registry.keys.get(key)
        # The key travels with the id, so the loop can tell a key replaced since the handshake.
        return None if sensor_id is None else f"{sensor_id} {key.decode('ascii')}"


class _KeyVanishedError(Exception):
    """A key vanished between the ZAP callback and the user id lookup."""


class _Authenticator(zmq.auth.thread.ThreadAuthenticator):
    def __init__(self, context: zmq.Context, ring: _KeyRing) -> None:
        super().__init__(context)
        self._ring = ring

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = zmq.utils.z85.encode(client_public_key)
        user_id = self._ring.user_id(key)
        if user_id is None:
            raise _KeyVanishedError(key)
        return user_id

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """pyzmq's handler, made unkillable: whatever fails, the request is refused and the thread lives."""
        try:
            await super().handle_zap_message(msg)
        except _KeyVanishedError as refused:
            log.warning(
                "refused CURVE key %r: removed from %s during the handshake", refused.args[0], self._ring.directory
            )
            self._refuse(msg, b"400", b"Unknown key")
        except Exception:
            log.exception("ZAP request failed; refused")
            self._refuse(msg, b"500", b"Internal error")

    def _refuse(self, msg: list[bytes], status: bytes, text: bytes) -> None:
        if len(msg) < 2:  # no request id to answer
            return
        try:
            self._send_zap_reply(msg[1], status, text)
        except zmq.ZMQError as exc:  # e.g. the node is shutting down; the handshake fails either way
            log.warning("ZAP reply not sent: %s", exc)


class Receiver:
    """Binds a ROUTER socket; :meth:`poll` yields authenticated, validated messages.

    Parameters
    ----------
    bind_endpoint : str
        e.g. ``tcp://127.0.0.1:5750`` (``tcp://127.0.0.1:0`` picks a free port; see
        :attr:`endpoint`).
    secret_key_file : Path
        The fusion node's ``.key_secret``.
    authorized_keys_dir : Path
        Folder of sensors' ``SENSOR_ID.key`` public keys.
    site_radius_m : float > 0
        Positions farther than this from the site origin (horizontally) are rejected, m
        (``site.radius_m``).
    max_streams_per_sensor : int > 0
        Distinct sensor ids one key may speak for (``fusion.max_streams_per_sensor``).
    keys_reread_s : float > 0
        Re-read ``authorized_keys_dir`` at most this often, s.
    """

    def __init__(
        self,
        *,
        bind_endpoint: str,
        secret_key_file: Path,
        authorized_keys_dir: Path,
        site_radius_m: float = DEFAULT_SITE_RADIUS_M,
        max_streams_per_sensor: int = DEFAULT_MAX_STREAMS_PER_SENSOR,
        keys_reread_s: float = KEYS_REREAD_S,
    ) -> None:
        self.stats = ReceiverStats()
        self.site_radius_m = site_radius_m
        self.max_streams_per_sensor = max_streams_per_sensor
        self._streams: dict[str, set[str]] = {}  # authenticated sensor id -> ids it has spoken for
        self._refused: list[Refused] = []
        self._ring = _KeyRing(authorized_keys_dir, reread_s=keys_reread_s)
        public, secret = load_keypair(secret_key_file)
        self._context = zmq.Context()
        self._auth = _Authenticator(self._context, self._ring)
        self._auth.start()
        self._auth.configure_curve_callback("*", credentials_provider=self._ring)
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.curve_server = True
        self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
        self._socket.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socket.bind(bind_endpoint)
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def check_alive(self) -> None:
        """Raise when the authenticator thread has died: no sensor could (re)connect, so the
        node's loop must fail and the process be restarted rather than serve on deaf."""
        if not self._auth.is_alive():
            raise RuntimeError("the ZAP authenticator thread is not running: no sensor can connect")

    def take_refused(self) -> list[Refused]:
        """The messages refused since the last call (at most :data:`MAX_REFUSED_HELD`)."""
        refused, self._refused = self._refused, []
        return refused

    @property
    def problems(self) -> list[str]:
        """What health should show: unusable key files, and a dead authenticator thread."""
        problems = list(self._ring.registry.problems)
        if not self._auth.is_alive():
            problems.append("ZAP authenticator thread is not running: no sensor can connect")
        return problems

    def poll(self, timeout_ms: int, *, max_messages: int | None = None) -> list[Envelope]:
        """Wait up to ``timeout_ms`` for messages; return those waiting and valid (at most ``max_messages``
        read, so the caller's batch stays bounded; the rest wait for the next call)."""
        envelopes: list[Envelope] = []
        self._refresh_keys()  # here, not only on traffic, so that problems stay current on a quiet node
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return envelopes
        n_read = 0
        while max_messages is None or n_read < max_messages:
            n_read += 1
            try:
                routing, payload = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return envelopes
            except ValueError:
                self.stats.count_rejected(RejectReason.BAD_FRAMES)
                log.warning("dropped a message with an unexpected number of frames")
                continue
            envelope = self._admit(routing.bytes, payload)
            if envelope is not None:
                self.stats.received += 1
                envelopes.append(envelope)
        return envelopes

    def _refresh_keys(self) -> None:
        before = self._ring.registry
        self._ring.refresh()
        if self._ring.registry is not before:  # forget the streams of sensors no longer registered
            for sensor_id in set(self._streams) - self._ring.registry.sensor_ids:
                del self._streams[sensor_id]

    def _admit(self, routing_id: bytes, payload: zmq.Frame) -> Envelope | None:
        """The message as an envelope, or ``None`` after logging, counting and rejecting it."""
        sensor_id = self._authenticated_sensor(payload)
        if sensor_id is None:
            self.stats.count_rejected(RejectReason.REVOKED)
            log.warning("dropped a message from a connection whose key is no longer registered")
            return None
        data = payload.bytes
        try:
            message = wire.decode(data)
        except WireError as exc:
            self._refuse(routing_id, sensor_id, RejectReason.MALFORMED, str(exc), wire.rejectable_id(data), data)
            return None
        claimed = getattr(message, "sensor_id", sensor_id)
        problem = self._check(sensor_id, claimed, message)
        if problem is not None:
            reason, text = problem
            self._refuse(routing_id, sensor_id, reason, text, wire.message_id(message) or None, data)
            return None
        self._streams.setdefault(sensor_id, set()).add(claimed)
        return Envelope(routing_id=routing_id, sensor_id=sensor_id, message=message)

    def _authenticated_sensor(self, payload: zmq.Frame) -> str | None:
        """The sensor id the connection's key is registered for now (``None``: revoked or replaced)."""
        try:
            user_id = payload.get("User-Id")
        except zmq.ZMQError:
            return None
        sensor_id, _, key = user_id.partition(" ")
        return sensor_id if self._ring.registry.keys.get(key.encode("ascii", "replace")) == sensor_id else None

    def _check(self, sensor_id: str, claimed: str, message: wire.Message) -> tuple[RejectReason, str] | None:
        """Why a well-formed message is still refused, or ``None``."""
        if claimed != sensor_id and not self._is_stream_of(claimed, sensor_id):
            return RejectReason.SPOOFED, f"a {type(message).__name__} claiming sensor {claimed!r}"
        position = getattr(message, "position", None)
        if position is not None:
            distance_m = math.hypot(position.x_m, position.y_m)
            if distance_m > self.site_radius_m:
                return RejectReason.OUTSIDE_SITE, (
                    f"{type(message).__name__} of {claimed!r} at ({position.x_m:.1f}, {position.y_m:.1f}) m is "
                    f"{distance_m:.0f} m from the site origin; site.radius_m = {self.site_radius_m:.0f}"
                )
        streams = self._streams.get(sensor_id, set())
        if claimed not in streams and len(streams) >= self.max_streams_per_sensor:
            return RejectReason.TOO_MANY_STREAMS, (
                f"stream {claimed!r} would be one more than fusion.max_streams_per_sensor = "
                f"{self.max_streams_per_sensor}"
            )
        return None

    def _refuse(
        self,
        routing_id: bytes,
        sensor_id: str,
        reason: RejectReason,
        text: str,
        message_id: str | None,
        payload: bytes,
    ) -> None:
        self.stats.count_rejected(reason)
        if len(self._refused) < MAX_REFUSED_HELD:
            self._refused.append(Refused(sensor_id, reason, text, message_id, payload))
        answer = "; rejected" if message_id else "; dropped"
        log.warning("sensor %r: %s: %s%s", sensor_id, reason.value, text, answer)
        if message_id:
            self.reject(routing_id, [message_id], text)

    def _is_stream_of(self, claimed: str, sensor_id: str) -> bool:
        """``claimed`` is a stream id of ``sensor_id`` and not a sensor registered in its own right."""
        return claimed.startswith(f"{sensor_id}.") and claimed not in self._ring.registry.sensor_ids

    def ack(self, routing_id: bytes, message_ids: list[str]) -> None:
        """Tell one sensor connection that these messages are stored."""
        try:
            self._socket.send_multipart([routing_id, wire.encode(wire.Ack(message_ids=message_ids))], zmq.NOBLOCK)
            self.stats.acks_sent += 1
        except zmq.ZMQError as exc:
            # The sensor disconnected; it will resend and be acked then (resends are idempotent).
            log.info("ack to a departed connection dropped (%s)", exc)

    def reject(self, routing_id: bytes, message_ids: list[str], reason: str) -> None:
        """Tell one sensor connection that these messages will never be accepted (it stops resending them).

        ``reason`` is escaped and shortened to fit :class:`~sed.wire.Reject`.
        """
        try:
            message = wire.Reject(message_ids=message_ids, reason=wire.reject_reason(reason))
            self._socket.send_multipart([routing_id, wire.encode(message)], zmq.NOBLOCK)
            self.stats.rejects_sent += 1
        except zmq.ZMQError as exc:
            # The sensor disconnected; it will resend, and be rejected again then.
            log.info("reject to a departed connection dropped (%s)", exc)

    def close(self) -> None:
        self._socket.close(linger=0)
        self._auth.stop()
        self._context.term()


__all__ = ["KEYS_REREAD_S", "Envelope", "Receiver", "ReceiverStats", "Refused", "RejectReason"]
