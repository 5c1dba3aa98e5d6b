"""Revoking a sensor over HTTP deletes its key from the fusion node's folder, forgets it and audits it."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from sed import wire
from sed.config import ServerConfig
from sed.keys import authorized_keys, generate_keypair
from sed.store import Store


def _register(config: ServerConfig, sensor_id: str) -> None:
    public, _ = generate_keypair(config.fusion.authorized_keys_dir.parent / "sensor-keys", sensor_id)
    (config.fusion.authorized_keys_dir / f"{sensor_id}.key").write_bytes(public.read_bytes())


def test_admin_revokes_a_sensor_key_and_row_with_an_audit_entry(
    client: TestClient, store: Store, config: ServerConfig, admin: dict[str, str], operator: dict[str, str]
) -> None:
    for sensor_id in ("pole-1", "pole-2"):
        _register(config, sensor_id)
        store.touch_sensor(sensor_id, wire.Position(x_m=0, y_m=0), seen_at_ns=time.time_ns())
    assert client.post("/api/sensors/pole-1/revoke", headers=operator).status_code == 403
    response = client.post("/api/sensors/pole-1/revoke", headers=admin)
    assert response.status_code == 200
    assert response.json() == {"sensor_id": "pole-1", "key_file_removed": "pole-1.key", "forgotten": True}
    assert sorted(authorized_keys(config.fusion.authorized_keys_dir).values()) == ["pole-2"]
    assert [s["sensor_id"] for s in client.get("/api/sensors", headers=operator).json()] == ["pole-2"]
    (entry,) = store.accounts.audit_entries(action="sensor.revoke")
    assert (entry.username, entry.target) == ("alice", "pole-1") and entry.remote_addr
    assert client.post("/api/sensors/pole-1/revoke", headers=admin).status_code == 404


def test_deleting_a_sensor_also_deletes_its_key(
    client: TestClient, store: Store, config: ServerConfig, admin: dict[str, str]
) -> None:
    _register(config, "pole-3")
    store.touch_sensor("pole-3", wire.Position(x_m=0, y_m=0), seen_at_ns=time.time_ns())
    assert client.delete("/api/sensors/pole-3", headers=admin).status_code == 204
    assert authorized_keys(config.fusion.authorized_keys_dir) == {}
    assert [e.action for e in store.accounts.audit_entries(target="pole-3")] == ["sensor.delete"]


def test_a_key_never_seen_in_the_list_can_still_be_revoked_and_ids_cannot_leave_the_folder(
    client: TestClient, config: ServerConfig, admin: dict[str, str]
) -> None:
    _register(config, "pole-4")
    outside = config.fusion.authorized_keys_dir.parent / "fusion.key"
    outside.write_text("not to be touched")
    revoked = client.post("/api/sensors/pole-4/revoke", headers=admin).json()
    assert revoked == {"sensor_id": "pole-4", "key_file_removed": "pole-4.key", "forgotten": False}
    assert client.post("/api/sensors/..%2Ffusion/revoke", headers=admin).status_code == 404
    assert outside.read_text() == "not to be touched"
