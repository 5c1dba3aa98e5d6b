"""The HTTP API through TestClient on a temporary SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sed import wire
from sed.api.app import create_app
from sed.config import ServerConfig, parse_config
from sed.store import Store
from tests.unit.store.test_store import detection, incident


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    (tmp_path / "authorized").mkdir()
    (tmp_path / "fusion.key_secret").write_text("x")
    return parse_config(
        {
            "site": {"origin_lat_deg": 49.7475, "origin_lon_deg": 13.3776},
            "fusion": {"secret_key_file": str(tmp_path / "fusion.key_secret"), "authorized_keys_dir": str(tmp_path / "authorized")},
            "store": {"url": f"sqlite:///{tmp_path / 'api.sqlite'}"},
        },
        ServerConfig,
    )


@pytest.fixture
def store(config: ServerConfig) -> Iterator[Store]:
    s = Store(config.store.url)
    yield s
    s.close()


@pytest.fixture
def client(config: ServerConfig, store: Store) -> TestClient:
    return TestClient(create_app(config, store))


def test_healthz_answers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_incident_list_and_detail_with_detections_and_geodetic_position(client: TestClient, store: Store) -> None:
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=10)
    store.save_incident(incident("i1", ["pole-1:0", "pole-2:1", "pole-3:2"], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("i2", [], origin_ns=200, label=wire.Label.SCREAM), updated_at_ns=1)
    listed = client.get("/api/incidents").json()
    assert [i["incident_id"] for i in listed] == ["i2", "i1"]
    detail = client.get("/api/incidents/i1").json()
    assert [d["sensor_id"] for d in detail["detections"]] == ["pole-1", "pole-2", "pole-3"]
    assert detail["position"]["x_m"] == 1.0
    assert detail["position"]["lat_deg"] == pytest.approx(49.7475 + 2.0 / 111_195, abs=1e-7)
    assert detail["uncertainty_m"] == 3.5


def test_incident_filters_are_typed(client: TestClient, store: Store) -> None:
    store.save_incident(incident("a", [], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("b", [], origin_ns=200, label=wire.Label.SCREAM), updated_at_ns=1)
    assert [i["incident_id"] for i in client.get("/api/incidents?label=scream").json()] == ["b"]
    assert [i["incident_id"] for i in client.get("/api/incidents?since_ns=150").json()] == ["b"]
    assert client.get("/api/incidents?label=fireworks").status_code == 422
    assert client.get("/api/incidents?limit=0").status_code == 422


def test_unknown_incident_is_404_naming_it(client: TestClient) -> None:
    response = client.get("/api/incidents/nope")
    assert response.status_code == 404
    assert response.json()["detail"] == "incident nope not found"


def test_sensors_report_health(client: TestClient, store: Store) -> None:
    now = time.time_ns()
    store.record_heartbeat(
        wire.Heartbeat(sensor_id="ok", sent_at_ns=now, clock_status=wire.ClockStatus.SYNCED, input_rms_dbfs=-50),
        received_at_ns=now,
    )
    store.record_heartbeat(
        wire.Heartbeat(sensor_id="mute", sent_at_ns=now, clock_status=wire.ClockStatus.SYNCED, input_rms_dbfs=-150),
        received_at_ns=now,
    )
    store.record_heartbeat(
        wire.Heartbeat(sensor_id="drift", sent_at_ns=now, clock_status=wire.ClockStatus.UNSYNCED, input_rms_dbfs=-50),
        received_at_ns=now,
    )
    store.record_heartbeat(
        wire.Heartbeat(sensor_id="old", sent_at_ns=1, clock_status=wire.ClockStatus.SYNCED), received_at_ns=1
    )
    status = {s["sensor_id"]: s["status"] for s in client.get("/api/sensors").json()}
    assert status == {"ok": "online", "mute": "silent", "drift": "clock_unsynced", "old": "stale"}
