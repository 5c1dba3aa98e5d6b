"""The CURVE socket a fuzzing sensor throws frames through, and the detection that probes a node.

Shared by the wire fuzz tests (``tests/integration/test_wire_fuzz.py``,
``tests/integration/test_node_crash_cases.py``) and ``benchmarks/fuzz_wire.py``; the frames
come from :mod:`fuzz_frames`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import zmq

from sed import wire
from sed.keys import load_keypair, load_public_key


def valid_detection(sensor_id: str, detection_id: str, *, x_m: float = 10.0, y_m: float = 20.0) -> wire.Detection:
    """A detection every fusion node must store and acknowledge."""
    return wire.Detection(
        detection_id=detection_id,
        sensor_id=sensor_id,
        label=wire.Label.GUNSHOT,
        score=0.9,
        arrival_time_ns=time.time_ns(),
        arrival_uncertainty_ns=100_000,
        duration_ms=50.0,
        peak_dbfs=-6.0,
        position=wire.Position(x_m=x_m, y_m=y_m, z_m=4.0),
        clock_status=wire.ClockStatus.SYNCED,
    )


@dataclasses.dataclass
class LinkStats:
    """What came back on one link."""

    sent: int = 0
    acks: int = 0
    rejects: int = 0
    undecodable_replies: int = 0


class SensorLink:
    """A registered sensor's CURVE DEALER connection that sends raw frames and reads replies.

    Parameters
    ----------
    endpoint : str
        The fusion node's ``tcp://…``.
    secret_key_file, server_public_key_file : Path
        The sensor's ``.key_secret`` and the fusion node's ``.key``.
    send_timeout_s : float
        A send that blocks this long (the node stopped reading) raises ``zmq.Again``.
    """

    def __init__(
        self, *, endpoint: str, secret_key_file: Path, server_public_key_file: Path, send_timeout_s: float = 10.0
    ) -> None:
        self.stats = LinkStats()
        self.acked_ids: set[str] = set()
        self.rejected: dict[str, str] = {}  # message id -> reason
        self._socket = zmq.Context.instance().socket(zmq.DEALER)
        public, secret = load_keypair(secret_key_file)
        self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
        self._socket.curve_serverkey = load_public_key(server_public_key_file)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDTIMEO, round(send_timeout_s * 1000))
        self._socket.connect(endpoint)

    def send(self, parts: Sequence[bytes]) -> None:
        """Send one raw message (a fuzzed frame's parts), reading replies as they come."""
        self._socket.send_multipart(list(parts))
        self.stats.sent += 1
        self.drain()

    def send_message(self, message: wire.Message) -> None:
        self._socket.send(wire.encode(message))
        self.stats.sent += 1

    def drain(self, timeout_ms: int = 0) -> None:
        """Read every reply waiting (waiting up to ``timeout_ms`` for the first)."""
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            try:
                reply = wire.decode(self._socket.recv())
            except Exception:  # a reply we cannot read is counted, never fatal to the fuzzer
                self.stats.undecodable_replies += 1
                continue
            if isinstance(reply, wire.Ack):
                self.stats.acks += 1
                self.acked_ids.update(reply.message_ids)
            elif isinstance(reply, wire.Reject):
                self.stats.rejects += 1
                self.rejected.update(dict.fromkeys(reply.message_ids, reply.reason))

    def wait_for(self, message_id: str, *, timeout_s: float, reject: bool = False) -> bool:
        """Whether an ``Ack`` (or with ``reject``, a ``Reject``) naming ``message_id`` arrives in time."""
        seen = self.rejected if reject else self.acked_ids
        deadline = time.monotonic() + timeout_s
        while message_id not in seen:
            remaining_ms = round((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return False
            self.drain(min(remaining_ms, 50))
        return True

    def probe(self, detection: wire.Detection, *, timeout_s: float) -> float | None:
        """Send a valid detection; seconds until its ``Ack``, ``None`` if none came in time."""
        start = time.monotonic()
        self.send_message(detection)
        if self.wait_for(detection.detection_id, timeout_s=timeout_s):
            return time.monotonic() - start
        return None

    def close(self) -> None:
        self._socket.close(linger=0)


__all__ = ["LinkStats", "SensorLink", "valid_detection"]
