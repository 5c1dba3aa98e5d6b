"""The false-alarm policy through the API: priority in incident JSON and as a filter, noisy sensors,
and webhooks for alerts only (an unconfirmed incident is delivered once it is upgraded)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import msgspec
import pytest
from fastapi.testclient import TestClient

from sed import wire
from sed.api.app import create_app
from sed.store import Store
from tests.unit.api.test_webhooks import SECRET, Receiver
from tests.unit.store.test_store import incident

Priority = wire.IncidentPriority


def _save(store: Store, incident_id: str, priority: Priority, *, origin_ns: int = 100) -> wire.Incident:
    message = msgspec.structs.replace(incident(incident_id, [], origin_ns=origin_ns), priority=priority)
    store.save_incident(message, updated_at_ns=1)
    return message


def test_incident_json_carries_the_priority_and_the_list_filters_by_it(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    for n, priority in enumerate(Priority):
        _save(store, str(priority), priority, origin_ns=100 + n)
    listed = client.get("/api/incidents", headers=operator).json()
    assert {i["incident_id"]: i["priority"] for i in listed} == {p: p for p in ("alert", "unconfirmed", "suppressed")}
    only = client.get("/api/incidents", headers=operator, params={"priority": ["unconfirmed", "suppressed"]}).json()
    assert sorted(i["incident_id"] for i in only) == ["suppressed", "unconfirmed"]
    assert client.get("/api/incidents/unconfirmed", headers=operator).json()["priority"] == "unconfirmed"
    bad = client.get("/api/incidents?priority=urgent", headers=operator)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "priority", 0]


def test_a_noisy_sensor_is_listed_with_its_classes_and_counted_in_the_metrics(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    for sensor in ("pole-1", "pole-2"):
        store.touch_sensor(sensor, wire.Position(x_m=1.0, y_m=2.0), seen_at_ns=time.time_ns())
    store.set_noisy_labels("pole-2", [wire.Label.SCREAM])
    sensors = {s["sensor_id"]: s for s in client.get("/api/sensors", headers=operator).json()}
    assert (sensors["pole-1"]["status"], sensors["pole-1"]["noisy"]) == ("online", [])
    assert (sensors["pole-2"]["status"], sensors["pole-2"]["noisy"]) == ("noisy", ["scream"])
    metrics = client.get("/metrics", headers=operator).text
    assert 'sed_sensors{status="noisy"} 1.0' in metrics and 'sed_sensors{status="online"} 1.0' in metrics


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver(n_failures=0)
    yield r
    r.close()


def test_webhooks_fire_for_alerts_only_and_for_an_unconfirmed_incident_once_upgraded(
    make_config, store: Store, admin: dict[str, str], hook: Receiver
) -> None:
    with TestClient(create_app(make_config(), store)) as client:
        client.post("/api/rules", headers=admin, json={"name": "all", "url": hook.url, "secret": SECRET})
        feed = client.app.state.feed
        for priority in (Priority.UNCONFIRMED, Priority.SUPPRESSED):
            feed.announce_incident(_save(store, str(priority), priority))
        time.sleep(0.5)
        assert hook.requests == []  # held back by the policy
        feed.announce_incident(_save(store, "unconfirmed", Priority.ALERT))  # more poles joined: upgraded
        hook.wait_for(1)
        time.sleep(0.3)
    (body,) = [json.loads(body) for _, body in hook.requests]
    assert (body["incident"]["incident_id"], body["incident"]["priority"]) == ("unconfirmed", "alert")
