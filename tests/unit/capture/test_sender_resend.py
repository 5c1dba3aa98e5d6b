"""Resends that do not multiply the load: a late ack never makes the whole outbox due at once;
a reconnection (the node back after a restart) does."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import zmq

from sed import wire
from sed.capture.outbox import Outbox
from sed.capture.sender import Sender
from sed.fusion.receiver import Receiver
from tests.integration.sensor_support import wait_for
from tests.unit.capture.test_sender import _detection


def _receiver(keys: dict[str, Path], endpoint: str = "tcp://127.0.0.1:0") -> Receiver:
    return Receiver(
        bind_endpoint=endpoint, secret_key_file=keys["fusion"], authorized_keys_dir=keys["authorized_keys_dir"]
    )


def _heartbeat() -> wire.Heartbeat:
    return wire.Heartbeat(sensor_id="pole-1", sent_at_ns=time.time_ns(), clock_status=wire.ClockStatus.SYNCED)


def test_late_acks_of_other_messages_leave_an_unacked_message_on_its_back_off(
    curve_keys: Callable[..., dict[str, Path]], tmp_path: Path
) -> None:
    keys = curve_keys("pole-1")
    receiver = _receiver(keys)
    sender = Sender(
        endpoint=receiver.endpoint,
        secret_key_file=keys["pole-1"],
        server_public_key_file=keys["fusion_public"],
        outbox=Outbox(tmp_path / "outbox.sqlite", resend_initial_s=0.3, jitter_fraction=0.0),
        heartbeat=_heartbeat,
        heartbeat_interval_s=0.05,
    )
    sender.start()
    sender.submit(_detection("pole-1"))  # never acked: only its back-off decides when it goes again
    copies = 0
    heartbeats: list[bytes] = []
    started = time.monotonic()
    next_answer = started + 0.4
    try:
        while time.monotonic() - started < 2.5:
            for envelope in receiver.poll(20):
                if isinstance(envelope.message, wire.Detection):
                    copies += 1
                else:
                    heartbeats.append(envelope.routing_id)
            if time.monotonic() >= next_answer and heartbeats:  # a slow node: its answers come in bursts
                for routing_id in heartbeats:
                    receiver.ack(routing_id, [])
                heartbeats.clear()
                next_answer = time.monotonic() + 0.4
    finally:
        sender.stop(flush_timeout_s=0.1)
        receiver.close()
    # Back-off alone: sent at 0, 0.3, 0.9 and 2.1 s. Resending everything whenever an answer
    # follows a silence (what multiplied the load) sends it again at every burst: 7 or more.
    assert 3 <= copies <= 4
    assert sender.stats.links_up == 1


def test_a_reconnection_resends_what_is_pending_without_waiting_for_its_back_off(
    curve_keys: Callable[..., dict[str, Path]], tmp_path: Path
) -> None:
    keys = curve_keys("pole-1")
    first = _receiver(keys)
    endpoint = first.endpoint
    sender = Sender(
        endpoint=endpoint,
        secret_key_file=keys["pole-1"],
        server_public_key_file=keys["fusion_public"],
        outbox=Outbox(tmp_path / "outbox.sqlite", resend_initial_s=60.0),  # no resend by back-off in this test
    )
    sender.start()
    second = None
    try:
        sender.submit(_detection("pole-1"))
        wait_for(
            lambda: [e for e in first.poll(20) if isinstance(e.message, wire.Detection)], timeout_s=10, what="send"
        )
        first.close()  # the node dies before it acks
        second = wait_for(lambda: _bind_again(keys, endpoint), timeout_s=10, what="the port again")
        resent = wait_for(
            lambda: [e for e in second.poll(20) if isinstance(e.message, wire.Detection)],
            timeout_s=10,
            what="the resend after reconnecting",
        )
        assert resent[0].message.detection_id == "pole-1:1"
        second.ack(resent[0].routing_id, ["pole-1:1"])
        wait_for(lambda: sender.outbox.depth() == 0, timeout_s=10, what="the ack")
        assert sender.stats.links_up == 2
    finally:
        sender.stop(flush_timeout_s=0.1)
        if second is not None:
            second.close()


def _bind_again(keys: dict[str, Path], endpoint: str) -> Receiver | None:
    try:
        return _receiver(keys, endpoint)
    except zmq.ZMQError:  # the old socket's port not released yet
        return None
