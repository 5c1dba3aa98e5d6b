"""The simulated poles speak the sensor's side of the wire: a heartbeat with the position once
connected, each detection resent with back-off until acknowledged, never again once rejected."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from sed import wire
from sed.bench.fusion_poles import PoleSpec, run_poles
from sed.keys import NetworkKeys, load_keypair, load_public_key

POLE = "pole-7"
POSITION_M = (10.0, 20.0, 4.0)


def detection(detection_id: str, arrival_time_ns: int) -> wire.Detection:
    return wire.Detection(
        detection_id=detection_id,
        sensor_id=POLE,
        label=wire.Label.GUNSHOT,
        score=0.9,
        arrival_time_ns=arrival_time_ns,
        arrival_uncertainty_ns=100_000,
        duration_ms=50.0,
        peak_dbfs=-6.0,
        position=wire.Position(x_m=POSITION_M[0], y_m=POSITION_M[1], z_m=POSITION_M[2]),
        clock_status=wire.ClockStatus.SYNCED,
    )


class Node:
    """A CURVE ROUTER that ignores the first copy of ``ignore_once``, rejects ``reject``, acks the rest."""

    def __init__(self, keys: NetworkKeys, *, ignore_once: set[str], reject: set[str]) -> None:
        public, secret = load_keypair(keys.fusion_secret_key_file)
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.curve_server = True
        self.socket.curve_publickey, self.socket.curve_secretkey = public, secret
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.ignore_once, self.reject = ignore_once, reject
        self.received: list[tuple[int, wire.Message]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.socket.poll(20):
                continue
            routing_id, data = self.socket.recv_multipart()
            message = wire.decode(data)
            self.received.append((time.time_ns(), message))
            if not isinstance(message, wire.Detection):
                continue
            if message.detection_id in self.ignore_once:
                self.ignore_once.discard(message.detection_id)
            elif message.detection_id in self.reject:
                reply = wire.Reject(message_ids=[message.detection_id], reason="not this one")
                self.socket.send_multipart([routing_id, wire.encode(reply)])
            else:
                self.socket.send_multipart([routing_id, wire.encode(wire.Ack(message_ids=[message.detection_id]))])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close(linger=0)


@pytest.fixture
def keys(tmp_path: Path) -> NetworkKeys:
    return NetworkKeys.create(tmp_path, [POLE])


@pytest.fixture
def node(keys: NetworkKeys) -> Iterator[Node]:
    node = Node(keys, ignore_once={"late"}, reject={"refused"})
    yield node
    node.close()


def test_a_pole_heartbeats_then_resends_until_acked_and_drops_what_is_rejected(keys: NetworkKeys, node: Node) -> None:
    ours, theirs = multiprocessing.Pipe()
    pole = PoleSpec(
        sensor_id=POLE,
        secret_key_file=str(keys.sensor_secret_key_files[POLE]),
        position_m=POSITION_M,
        detections=[
            (1_000, detection("on-time", 500)),
            (2_000, detection("late", 1_500)),
            (3_000, detection("refused", 2_500)),
        ],
    )
    worker = threading.Thread(
        target=run_poles,
        kwargs={
            "conn": theirs,
            "poles": [pole],
            "endpoint": node.endpoint,
            "server_public_key": load_public_key(keys.fusion_public_key_file),
            "heartbeat_interval_s": None,
            "connect_timeout_s": 10.0,
        },
        daemon=True,
    )
    worker.start()
    try:
        assert ours.poll(10) and ours.recv() == ("ready", 1)
        offset_ns = time.time_ns()  # the scenario's ns 0 is now
        ours.send(("go", offset_ns, offset_ns + 10 * 10**9))
        assert ours.poll(10)
        done, rows, stats = ours.recv()
    finally:
        worker.join(timeout=15)
    assert done == "done" and not worker.is_alive()
    by_id = {row[0]: row[1:] for row in rows}
    sent_ns, acked_ns, attempts, rejected = by_id["on-time"]
    assert attempts == 1 and acked_ns >= sent_ns >= offset_ns + 1_000 and rejected == ""
    sent_ns, acked_ns, attempts, rejected = by_id["late"]
    assert attempts == 2 and acked_ns - sent_ns >= 0.5e9  # acked on the resend, after the sensor's first back-off
    _, acked_ns, attempts, rejected = by_id["refused"]
    assert (acked_ns, attempts, rejected) == (0, 1, "not this one")
    assert stats["resends"] == 1

    first = node.received[0][1]
    assert isinstance(first, wire.Heartbeat) and first.position == wire.Position(x_m=10.0, y_m=20.0, z_m=4.0)
    detections = [m for _, m in node.received if isinstance(m, wire.Detection)]
    assert [d.detection_id for d in detections] == ["on-time", "late", "refused", "late"]
    # Moved to the wall clock with the schedule: every difference kept.
    assert [d.arrival_time_ns - offset_ns for d in detections] == [500, 1_500, 2_500, 1_500]
