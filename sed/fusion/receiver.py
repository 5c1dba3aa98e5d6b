"""Fusion side of the link: a CURVE-secured ROUTER that only moves wire messages.

Only sensors whose public key is in ``authorized_keys_dir`` complete the handshake; the
ZAP handler maps each key to the sensor id named by its file, and every message must
carry that sensor id or one of its stream ids ``<sensor id>.<suffix>`` (the channels of
a multi-microphone sensor) that is not itself a registered sensor: a sensor cannot speak
for another. Oversized messages are cut by
``ZMQ_MAXMSGSIZE``; malformed ones are logged (one line each), counted and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import zmq
import zmq.auth.thread
import zmq.utils.z85

from sed import wire
from sed.errors import WireError
from sed.keys import authorized_keys, load_keypair

log = logging.getLogger("sed.fusion.receiver")


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A decoded message with the connection it came from and the authenticated sensor."""

    routing_id: bytes
    sensor_id: str
    message: wire.Message


@dataclasses.dataclass
class ReceiverStats:
    received: int = 0
    rejected: int = 0
    acks_sent: int = 0


class _KeyToSensor:
    """ZAP credentials provider: known public key → sensor id (its key file's stem)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys = authorized_keys(directory)

    def callback(self, domain: str, key: bytes) -> bool:
        if key not in self.keys:
            self.keys = authorized_keys(self.directory)  # a sensor may have been registered since
        allowed = key in self.keys
        if not allowed:
            log.warning("refused CURVE key %s (not in %s)", key.decode(errors="replace"), self.directory)
        return allowed


class _Authenticator(zmq.auth.thread.ThreadAuthenticator):
    def __init__(self, context: zmq.Context, provider: _KeyToSensor) -> None:
        super().__init__(context)
        self._provider = provider

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._provider.keys[zmq.utils.z85.encode(client_public_key)]


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
    """

    def __init__(self, *, bind_endpoint: str, secret_key_file: Path, authorized_keys_dir: Path) -> None:
        self.stats = ReceiverStats()
        self._context = zmq.Context()
        self._provider = _KeyToSensor(authorized_keys_dir)
        self._auth = _Authenticator(self._context, self._provider)
        self._auth.start()
        self._auth.configure_curve_callback("*", credentials_provider=self._provider)
        public, secret = load_keypair(secret_key_file)
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.curve_server = True
        self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
        self._socket.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socket.bind(bind_endpoint)
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def poll(self, timeout_ms: int) -> list[Envelope]:
        """Wait up to ``timeout_ms`` for messages; return all that are waiting and valid."""
        envelopes: list[Envelope] = []
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return envelopes
        while True:
            try:
                routing, payload = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return envelopes
            except ValueError:
                self.stats.rejected += 1
                log.warning("dropped a message with an unexpected number of frames")
                continue
            sensor_id = payload.get("User-Id")
            try:
                message = wire.decode(payload.bytes)
            except WireError as exc:
                self.stats.rejected += 1
                log.warning("sensor %s: %s", sensor_id, exc)
                continue
            claimed = getattr(message, "sensor_id", sensor_id)
            if claimed != sensor_id and not self._is_stream_of(claimed, sensor_id):
                self.stats.rejected += 1
                kind = type(message).__name__
                log.warning("sensor %s sent a %s claiming sensor %r; dropped", sensor_id, kind, claimed)
                continue
            self.stats.received += 1
            envelopes.append(Envelope(routing_id=routing.bytes, sensor_id=sensor_id, message=message))

    def _is_stream_of(self, claimed: str, sensor_id: str) -> bool:
        """``claimed`` is a stream id of ``sensor_id`` and not a sensor registered in its own right."""
        return claimed.startswith(f"{sensor_id}.") and claimed not in self._provider.keys.values()

    def ack(self, routing_id: bytes, message_ids: list[str]) -> None:
        """Tell one sensor connection that these messages are stored."""
        try:
            self._socket.send_multipart([routing_id, wire.encode(wire.Ack(message_ids=message_ids))], zmq.NOBLOCK)
            self.stats.acks_sent += 1
        except zmq.ZMQError as exc:
            # The sensor disconnected; it will resend and be acked then (resends are idempotent).
            log.info("ack to a departed connection dropped (%s)", exc)

    def close(self) -> None:
        self._socket.close(linger=0)
        self._auth.stop()
        self._context.term()


__all__ = ["Envelope", "Receiver", "ReceiverStats"]
