"""The HTTP API through TestClient on a temporary SQLite store: incidents, sensors, review, site."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from sed import wire
from sed.api.app import create_app
from sed.api.retention import NS_PER_DAY, expire
from sed.store import Store
from tests.unit.store.test_store import detection, incident


def test_healthz_answers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_incident_list_and_detail_with_detections_and_geodetic_position(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    for n, sensor in enumerate(["pole-1", "pole-2", "pole-3"]):
        store.add_detection(detection(n, sensor), received_at_ns=10)
    store.save_incident(incident("i1", ["pole-1:0", "pole-2:1", "pole-3:2"], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("i2", [], origin_ns=200, label=wire.Label.SCREAM), updated_at_ns=1)
    listed = client.get("/api/incidents", headers=operator).json()
    assert [i["incident_id"] for i in listed] == ["i2", "i1"]
    detail = client.get("/api/incidents/i1", headers=operator).json()
    assert [d["sensor_id"] for d in detail["detections"]] == ["pole-1", "pole-2", "pole-3"]
    assert detail["position"]["x_m"] == 1.0
    assert detail["position"]["lat_deg"] == pytest.approx(49.7475 + 2.0 / 111_195, abs=1e-7)
    assert detail["uncertainty_m"] == 3.5


def test_incident_filters_are_typed(client: TestClient, store: Store, operator: dict[str, str]) -> None:
    store.save_incident(incident("a", [], origin_ns=100), updated_at_ns=1)
    store.save_incident(incident("b", [], origin_ns=200, label=wire.Label.SCREAM), updated_at_ns=1)
    assert [i["incident_id"] for i in client.get("/api/incidents?label=scream", headers=operator).json()] == ["b"]
    assert [i["incident_id"] for i in client.get("/api/incidents?since_ns=150", headers=operator).json()] == ["b"]
    assert client.get("/api/incidents?label=fireworks", headers=operator).status_code == 422
    assert client.get("/api/incidents?limit=0", headers=operator).status_code == 422


def test_unknown_incident_is_404_naming_it(client: TestClient, operator: dict[str, str]) -> None:
    response = client.get("/api/incidents/nope", headers=operator)
    assert response.status_code == 404
    assert response.json()["detail"] == "incident nope not found"


def test_sensors_report_health(client: TestClient, store: Store, operator: dict[str, str]) -> None:
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
    status = {s["sensor_id"]: s["status"] for s in client.get("/api/sensors", headers=operator).json()}
    assert status == {"ok": "online", "mute": "silent", "drift": "clock_unsynced", "old": "stale"}


def test_review_changes_status_needs_a_reason_for_false_alarms_and_keeps_the_trail(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    store.save_incident(incident("i1", [], origin_ns=100), updated_at_ns=1)
    url = "/api/incidents/i1/review"
    assert client.post(url, headers=operator, json={"action": "acknowledge"}).json()["status"] == "acknowledged"
    missing = client.post(url, headers=operator, json={"action": "false_alarm", "text": "  "})
    assert missing.status_code == 422 and "needs a text" in missing.json()["detail"][0]["msg"]
    assert client.post(url, headers=operator, json={"action": "shrug"}).status_code == 422
    done = client.post(url, headers=operator, json={"action": "false_alarm", "text": "construction site nail gun"})
    assert done.status_code == 200 and done.json()["status"] == "false_alarm"
    assert [(r["username"], r["action"], r["text"]) for r in done.json()["reviews"]] == [
        ("oscar", "acknowledge", None),
        ("oscar", "false_alarm", "construction site nail gun"),
    ]
    assert client.get("/api/incidents?status=false_alarm", headers=operator).json()[0]["incident_id"] == "i1"
    assert client.post("/api/incidents/nope/review", headers=operator, json={"action": "confirm"}).status_code == 404


def test_area_filter_in_site_metres(client: TestClient, store: Store, operator: dict[str, str]) -> None:
    store.save_incident(incident("near", [], origin_ns=100), updated_at_ns=1)  # at (1, 2)
    inside = client.get("/api/incidents", headers=operator, params={"x_min_m": 0, "x_max_m": 5, "y_max_m": 5})
    outside = client.get("/api/incidents", headers=operator, params={"x_min_m": 100})
    assert [i["incident_id"] for i in inside.json()] == ["near"] and outside.json() == []


def test_site_tells_the_dashboard_how_to_draw_the_map(
    client: TestClient, operator: dict[str, str], make_config
) -> None:
    site = client.get("/api/site", headers=operator).json()
    assert site["tile_url"] is None and site["origin_lat_deg"] == 49.7475
    tiled = make_config(site={"tile_url": "https://tiles.city.example/{z}/{x}/{y}.png", "tile_attribution": "© city"})
    assert tiled.site.tile_url.startswith("https://tiles.city.example/")
    with pytest.raises(Exception, match="tile_url"):
        make_config(site={"tile_url": "https://tiles.city.example/no-placeholders.png"})


def test_admin_describes_and_forgets_a_sensor(
    client: TestClient, store: Store, admin: dict[str, str], operator: dict[str, str]
) -> None:
    store.touch_sensor("pole-1", wire.Position(x_m=0, y_m=0), seen_at_ns=time.time_ns())
    described = client.put("/api/sensors/pole-1", headers=admin, json={"description": "Main St / 5th, NE corner"})
    assert described.status_code == 200 and described.json()["description"] == "Main St / 5th, NE corner"
    assert client.get("/api/sensors", headers=operator).json()[0]["description"] == "Main St / 5th, NE corner"
    assert client.put("/api/sensors/pole-9", headers=admin, json={"description": "x"}).status_code == 404
    assert client.delete("/api/sensors/pole-1", headers=admin).status_code == 204
    assert client.get("/api/sensors", headers=operator).json() == []
    assert [e.action for e in store.accounts.audit_entries(username="alice")] == ["sensor.delete", "sensor.update"]


def test_metrics_count_requests_by_route_and_sensors_by_health(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    store.touch_sensor("pole-1", wire.Position(x_m=0, y_m=0), seen_at_ns=time.time_ns())
    client.get("/api/incidents", headers=operator)
    client.get("/api/incidents/abc", headers=operator)
    text = client.get("/metrics", headers=operator).text
    assert 'sed_http_requests_total{method="GET",route="/api/incidents",status="200"} 1.0' in text
    assert 'sed_http_requests_total{method="GET",route="/api/incidents/{incident_id}",status="404"} 1.0' in text
    assert 'sed_sensors{status="online"} 1.0' in text
    assert "sed_live_clients 0.0" in text


def test_retention_deletes_clips_older_than_the_configured_days(make_config, operator: dict[str, str]) -> None:
    config = make_config(store={"clip_retention_days": 7})
    store = Store(config.store.url)
    now = time.time_ns()
    for name, age_days in (("old", 8), ("fresh", 6)):
        clip = wire.EvidenceClip(
            detection_id=name, sensor_id="pole-1", start_time_ns=1, sample_rate_hz=16000, data=b"x"
        )
        store.add_clip(clip, received_at_ns=now - age_days * NS_PER_DAY)
    with TestClient(create_app(config, store)) as client:  # the server's retention job runs at start
        deadline = time.monotonic() + 5
        while store.evidence.get_clip("old") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        assert "sed_clips_expired_total 1.0" in client.get("/metrics", headers=operator).text
    assert store.evidence.get_clip("old") is None and store.evidence.get_clip("fresh") is not None
    assert expire(store, config, now_ns=now + 2 * NS_PER_DAY) == 1
    store.close()
