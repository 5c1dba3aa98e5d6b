"""Sensor ↔ fusion link over real loopback sockets with CURVE: delivery, acks, refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from sed import wire
from sed.capture.outbox import Outbox
from sed.capture.sender import Sender
from sed.fusion.receiver import Envelope, Receiver
from sed.keys import load_keypair, load_public_key


def _detection(sensor_id: str, n: int) -> wire.Detection:
    return wire.Detection(
        detection_id=f"{sensor_id}:{n}",
        sensor_id=sensor_id,
        label=wire.Label.GUNSHOT,
        score=0.9,
        arrival_time_ns=1_000 + n,
        arrival_uncertainty_ns=100,
        duration_ms=10,
        peak_dbfs=-10,
        position=wire.Position(x_m=0, y_m=0),
        clock_status=wire.ClockStatus.SYNCED,
    )


def _serve(receiver: Receiver, until: Callable[[list[Envelope]], bool], timeout_s: float = 10.0) -> list[Envelope]:
    """Receive and ack like the fusion node until ``until(received)`` or the timeout."""
    received: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(received):
        for envelope in receiver.poll(20):
            received.append(envelope)
            message_id = wire.message_id(envelope.message)
            receiver.ack(envelope.routing_id, [message_id] if message_id else [])
    return received


@pytest.fixture
def receiver(curve_keys: Callable[..., dict[str, Path]]) -> tuple[Receiver, dict[str, Path]]:
    keys = curve_keys("pole-1", "pole-2", unregistered=("rogue",))
    rx = Receiver(
        bind_endpoint="tcp://127.0.0.1:0",
        secret_key_file=keys["fusion"],
        authorized_keys_dir=keys["authorized_keys_dir"],
    )
    yield rx, keys
    rx.close()


def _sender(rx: Receiver, keys: dict[str, Path], sensor: str, tmp_path: Path) -> Sender:
    return Sender(
        endpoint=rx.endpoint,
        secret_key_file=keys[sensor],
        server_public_key_file=keys["fusion_public"],
        outbox=Outbox(tmp_path / f"{sensor}.sqlite", resend_initial_s=0.2),
        heartbeat=lambda: wire.Heartbeat(
            sensor_id=sensor, sent_at_ns=time.time_ns(), clock_status=wire.ClockStatus.SYNCED
        ),
        heartbeat_interval_s=0.5,
    )


def test_detections_arrive_authenticated_and_acks_empty_the_outbox(receiver, tmp_path: Path) -> None:
    rx, keys = receiver
    sender = _sender(rx, keys, "pole-1", tmp_path)
    sender.start()
    for n in range(20):
        sender.submit(_detection("pole-1", n))

    def all_in(received: list[Envelope]) -> bool:
        ids = {e.message.detection_id for e in received if isinstance(e.message, wire.Detection)}
        return len(ids) == 20 and any(isinstance(e.message, wire.Heartbeat) for e in received)

    got = _serve(rx, all_in)
    sender.stop()
    detections = [e for e in got if isinstance(e.message, wire.Detection)]
    assert {e.message.detection_id for e in detections} == {f"pole-1:{n}" for n in range(20)}
    assert {e.sensor_id for e in got} == {"pole-1"}
    assert any(isinstance(e.message, wire.Heartbeat) for e in got)
    assert sender.outbox.depth() == 0
    assert sender.stats.acked == 20


def test_unregistered_key_is_refused_and_its_messages_stay_in_its_outbox(receiver, tmp_path: Path) -> None:
    rx, keys = receiver
    sender = _sender(rx, keys, "rogue", tmp_path)
    sender.start()
    sender.submit(_detection("rogue", 1))
    got = _serve(rx, lambda r: False, timeout_s=1.5)
    sender.stop(flush_timeout_s=0.2)
    assert got == []
    assert sender.outbox.depth() == 1


def test_a_sensor_cannot_speak_for_another(receiver, tmp_path: Path) -> None:
    rx, keys = receiver
    sender = _sender(rx, keys, "pole-1", tmp_path)
    sender.heartbeat = None
    sender.start()
    sender.submit(_detection("pole-2", 1))  # signed with pole-1's key
    sender.submit(_detection("pole-1", 2))
    got = _serve(rx, lambda r: any(e.message.detection_id == "pole-1:2" for e in r))
    sender.stop(flush_timeout_s=0.2)
    assert [e.message.detection_id for e in got] == ["pole-1:2"]
    assert rx.stats.rejected >= 1


def test_malformed_message_is_dropped_and_the_link_keeps_working(receiver) -> None:
    rx, keys = receiver
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    public, secret = load_keypair(keys["pole-2"])
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = load_public_key(keys["fusion_public"])
    sock.connect(rx.endpoint)
    sock.send(b"\x93not msgpack at all")
    sock.send(wire.encode(_detection("pole-2", 7)))
    got = _serve(rx, lambda r: len(r) == 1, timeout_s=5)
    assert [e.message.detection_id for e in got] == ["pole-2:7"]
    assert rx.stats.rejected == 1
    assert wire.decode(sock.recv()) == wire.Ack(message_ids=["pole-2:7"])
    sock.close(linger=0)
