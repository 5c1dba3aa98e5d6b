"""A real fusion node over CURVE: a message the database refuses is quarantined and rejected; the node serves on.

The poison passes the wire schema (it stands for whatever the schema does not catch); the
store is made to refuse it, as SQLite refused integers ≥ 2**63 and PostgreSQL NUL bytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import sqlalchemy as sa

from benchmarks.fuzz_link import SensorLink, valid_detection
from sed import wire
from sed.api.auth import hash_password, issue_token
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.server import Server
from sed.store import Role, Store
from tests.integration.wire_fuzz_support import NodeThread, store_url

pytestmark = pytest.mark.slow

REPLY_TIMEOUT_S = 10.0
POISON = "pole-1:poison"


def _refuse_poison(store: Store) -> None:
    """Make ``store`` refuse the detection :data:`POISON` as a database refuses a value it cannot hold."""
    add_detection = store.add_detection

    def refusing(detection: wire.Detection, *, received_at_ns: int) -> bool:
        if detection.detection_id == POISON:
            raise sa.exc.IntegrityError("INSERT INTO detections …", {}, Exception("NOT NULL constraint failed"))
        return add_detection(detection, received_at_ns=received_at_ns)

    add_detections = store.add_detections

    def refusing_batch(received: list[tuple[wire.Detection, int]]) -> list[bool]:
        if any(detection.detection_id == POISON for detection, _ in received):  # the batch's transaction fails
            raise sa.exc.IntegrityError("INSERT INTO detections …", {}, Exception("NOT NULL constraint failed"))
        return add_detections(received)

    store.add_detection = refusing  # type: ignore[method-assign]
    store.add_detections = refusing_batch  # type: ignore[method-assign]


@pytest.fixture(params=["sqlite", "postgresql"])
def poisoned_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeThread]:
    url, drop = store_url(request.param, tmp_path)
    node = NodeThread(tmp_path, url=url)
    _refuse_poison(node.store)
    node.start()
    yield node
    node.close()
    drop()


def test_a_message_the_store_refuses_is_rejected_and_quarantined_and_the_next_is_stored(
    poisoned_node: NodeThread,
) -> None:
    link = poisoned_node.link("pole-1")
    link.send_message(valid_detection("pole-1", POISON))
    assert link.wait_for(POISON, timeout_s=REPLY_TIMEOUT_S, reject=True)
    assert link.rejected[POISON].startswith("store: IntegrityError")
    assert POISON not in link.acked_ids and poisoned_node.stored(POISON) == 0

    link.send_message(valid_detection("pole-1", POISON))  # a resend (before the sensor read the reject)
    link.send_message(valid_detection("pole-1", "pole-1:good"))
    assert link.wait_for("pole-1:good", timeout_s=REPLY_TIMEOUT_S)
    assert poisoned_node.alive() and poisoned_node.stored("pole-1:good") == 1
    assert POISON not in link.acked_ids

    entries = poisoned_node.store.quarantine.entries(payload_bytes=wire.MAX_MESSAGE_BYTES)
    assert [e.message_id for e in entries] == [POISON, POISON]
    assert entries[0].sensor_id == "pole-1" and entries[0].reason == "store"
    kept = wire.decode(entries[0].payload)
    assert isinstance(kept, wire.Detection) and kept.detection_id == POISON


def test_sed_server_counts_quarantined_messages_and_shows_them_to_admins(tmp_path: Path) -> None:
    keys = NetworkKeys.create(tmp_path, ["pole-1"])
    config = parse_config(
        {
            "fusion": {
                "bind_endpoint": "tcp://127.0.0.1:0",
                "secret_key_file": str(keys.fusion_secret_key_file),
                "authorized_keys_dir": str(keys.authorized_keys_dir),
            },
            "api": {"host": "127.0.0.1", "port": 0},
            "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
        },
        ServerConfig,
    )
    server = Server(config)
    server.start()
    link = SensorLink(
        endpoint=server.fusion_endpoint,
        secret_key_file=keys.sensor_secret_key_files["pole-1"],
        server_public_key_file=keys.fusion_public_key_file,
    )
    try:
        server.store.accounts.add_user(
            "admin", password_hash=hash_password("quarantine test"), role=Role.ADMIN, now_ns=0
        )
        token, _ = issue_token(server.store, "admin", label="test", now_ns=time.time_ns(), ttl_s=600)
        headers = {"Authorization": f"Bearer {token}"}
        _refuse_poison(server.store)
        link.send_message(valid_detection("pole-1", POISON))
        link.send_message(valid_detection("pole-1", "pole-1:good"))
        assert link.wait_for("pole-1:good", timeout_s=REPLY_TIMEOUT_S)
        with httpx.Client(base_url=server.api_url, headers=headers, timeout=10) as client:
            metrics = client.get("/metrics").text
            page = client.get("/api/quarantine").json()
        assert link.rejected[POISON].startswith("store: IntegrityError")
        assert 'sed_fusion_quarantined_total{reason="store"} 1.0' in metrics
        assert [e["message_id"] for e in page["entries"]] == [POISON] and page["entries"][0]["reason"] == "store"
    finally:
        link.close()
        server.stop()


def test_a_message_the_receiver_refuses_is_kept_in_quarantine_too(tmp_path: Path) -> None:
    node = NodeThread(tmp_path).start()
    link = node.link("pole-1")
    try:
        body = msgspec.to_builtins(valid_detection("pole-1", "pole-1:nan"))
        body["position"]["x_m"] = math.nan  # fails the wire schema: refused before the node handles it
        link.send([msgspec.msgpack.encode(body)])
        assert link.wait_for("pole-1:nan", timeout_s=REPLY_TIMEOUT_S, reject=True)
        link.send_message(valid_detection("pole-1", "pole-1:good"))
        assert link.wait_for("pole-1:good", timeout_s=REPLY_TIMEOUT_S)
        (entry,) = node.store.quarantine.entries(payload_bytes=wire.MAX_MESSAGE_BYTES)
        assert (entry.sensor_id, entry.reason, entry.message_id) == ("pole-1", "malformed", "pole-1:nan")
        assert "x_m" in entry.detail and msgspec.msgpack.decode(entry.payload)["detection_id"] == "pole-1:nan"
        assert node.stored("pole-1:nan") == 0 and node.stored("pole-1:good") == 1
    finally:
        link.close()
        node.close()
