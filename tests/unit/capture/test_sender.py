"""Sender ↔ receiver for a multi-stream sensor: one key, several stream ids, one heartbeat each."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sed import wire
from sed.capture.outbox import Outbox
from sed.capture.sender import Sender
from sed.fusion.receiver import Envelope, Receiver


def _detection(sensor_id: str) -> wire.Detection:
    return wire.Detection(
        detection_id=f"{sensor_id}:1",
        sensor_id=sensor_id,
        label=wire.Label.GLASS_BREAK,
        score=0.7,
        arrival_time_ns=1,
        arrival_uncertainty_ns=1,
        duration_ms=1.0,
        peak_dbfs=-3.0,
        position=wire.Position(x_m=0, y_m=0),
        clock_status=wire.ClockStatus.HOLDOVER,
    )


def test_a_sensor_speaks_for_its_streams_but_not_for_another_registered_sensor(
    curve_keys: Callable[..., dict[str, Path]], tmp_path: Path
) -> None:
    keys = curve_keys("pole-1", "pole-1.x")  # 'pole-1.x' is a sensor in its own right
    receiver = Receiver(
        bind_endpoint="tcp://127.0.0.1:0",
        secret_key_file=keys["fusion"],
        authorized_keys_dir=keys["authorized_keys_dir"],
    )
    streams = ["pole-1.0", "pole-1.1"]
    sender = Sender(
        endpoint=receiver.endpoint,
        secret_key_file=keys["pole-1"],
        server_public_key_file=keys["fusion_public"],
        outbox=Outbox(tmp_path / "outbox.sqlite", resend_initial_s=0.2),
        heartbeat=lambda: [
            wire.Heartbeat(sensor_id=s, sent_at_ns=time.time_ns(), clock_status=wire.ClockStatus.SYNCED)
            for s in streams
        ],
        heartbeat_interval_s=0.3,
    )
    sender.start()
    for sensor_id in ("pole-1.x", "pole-10", *streams):
        sender.submit(_detection(sensor_id))
    received: list[Envelope] = []

    def beats() -> set[str]:
        return {e.message.sensor_id for e in received if isinstance(e.message, wire.Heartbeat)}

    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and (sender.outbox.depth() > 0 or len(beats()) < 2):
            for envelope in receiver.poll(20):
                received.append(envelope)
                message_id = wire.message_id(envelope.message)
                receiver.ack(envelope.routing_id, [message_id] if message_id else [])
    finally:
        sender.stop(flush_timeout_s=0.2)
        receiver.close()
    detections = {e.message.sensor_id for e in received if isinstance(e.message, wire.Detection)}
    assert detections == {"pole-1.0", "pole-1.1"}
    assert beats() == {"pole-1.0", "pole-1.1"}
    assert {e.sensor_id for e in received} == {"pole-1"}  # the authenticated key
    # 'pole-1.x' (registered elsewhere) and 'pole-10' (not a stream id): rejected, so never resent
    assert set(receiver.stats.rejected_by_reason) == {"spoofed"}  # a resend may race the first reject
    assert sender.stats.rejected == 2
    assert sender.outbox.depth() == 0


def test_a_reject_drops_only_pending_ids_and_logs_once(
    curve_keys: Callable[..., dict[str, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = curve_keys("pole-1")
    receiver = Receiver(
        bind_endpoint="tcp://127.0.0.1:0",
        secret_key_file=keys["fusion"],
        authorized_keys_dir=keys["authorized_keys_dir"],
    )
    sender = Sender(
        endpoint=receiver.endpoint,
        secret_key_file=keys["pole-1"],
        server_public_key_file=keys["fusion_public"],
        outbox=Outbox(tmp_path / "outbox.sqlite", resend_initial_s=0.2),
    )
    sender.start()
    sender.submit(_detection("pole-1"))
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and sender.outbox.depth() > 0:
            for envelope in receiver.poll(20):
                # The second reject names an id the sensor no longer holds: nothing to drop, nothing to log.
                for _ in range(2):
                    receiver.reject(envelope.routing_id, ["pole-1:1", "never-sent"], "a test says no")
        time.sleep(0.3)  # the second reject arrives too
    finally:
        sender.stop(flush_timeout_s=0.2)
        receiver.close()
    assert sender.stats.rejected == 1
    assert sender.outbox.depth() == 0
    errors = [r.getMessage() for r in caplog.records if r.name == "sed.sensor.sender"]
    assert len(errors) == 1
    assert "rejected 'pole-1:1', 'never-sent' for good (a test says no); dropped, never resent" in errors[0]
