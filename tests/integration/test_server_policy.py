"""The false-alarm policy end to end: simulated poles over CURVE → fusion node → store → live feed →
webhooks, in one ``sed server`` process. One pole's unsure scream is stored and listed as
unconfirmed and fires no webhook; a gunshot four poles heard, just as unsure, is an alert and does."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sed import wire
from sed.api.auth import hash_password, issue_token
from sed.api.simulate import SimulatedSensors
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.server import Server
from sed.store import Role, Store
from tests.integration.sensor_support import wait_for
from tests.integration.wire_fuzz_support import NodeThread
from tests.unit.api.test_webhooks import SECRET, Receiver
from tests.unit.store.test_store import detection

pytestmark = pytest.mark.slow

POLES = {
    "pole-a": (0.0, 0.0, 6.0),
    "pole-b": (200.0, 0.0, 6.0),
    "pole-c": (200.0, 150.0, 6.0),
    "pole-d": (0.0, 150.0, 6.0),
}
UNSURE = 0.6  # below the default confirm_score (0.9)


@pytest.fixture
def city(tmp_path: Path) -> Iterator[tuple[Server, SimulatedSensors, str]]:
    keys = NetworkKeys.create(tmp_path, list(POLES))
    config: ServerConfig = parse_config(
        {
            "fusion": {
                "bind_endpoint": "tcp://127.0.0.1:0",
                "secret_key_file": str(keys.fusion_secret_key_file),
                "authorized_keys_dir": str(keys.authorized_keys_dir),
                "association_wait_s": 0.5,
            },
            "api": {"host": "127.0.0.1", "port": 0},
            "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
        },
        ServerConfig,
    )
    server = Server(config)
    server.start()
    server.store.accounts.add_user("chief", password_hash=hash_password("x" * 20), role=Role.ADMIN, now_ns=0)
    token, _ = issue_token(server.store, "chief", label="test", now_ns=time.time_ns(), ttl_s=600)
    sensors = SimulatedSensors(server.fusion_endpoint, keys, POLES, tmp_path, temperature_c=config.site.temperature_c)
    yield server, sensors, token
    sensors.close()
    server.stop()


def _api(server: Server, path: str, token: str, body: dict | None = None) -> object:
    request = urllib.request.Request(
        server.api_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_lone_unsure_incident_fires_no_webhook_while_a_corroborated_one_does(
    city: tuple[Server, SimulatedSensors, str],
) -> None:
    server, sensors, token = city
    hook = Receiver(n_failures=0)
    try:
        _api(server, "/api/rules", token, {"name": "everything", "url": hook.url, "secret": SECRET})

        sensors.emit(wire.Label.SCREAM, (10.0, 10.0, 1.5), score=UNSURE, sensor_ids=["pole-a"], with_clips=False)
        (lone,) = wait_for(
            lambda: _api(server, "/api/incidents?label=scream", token), timeout_s=15, what="the lone scream"
        )
        assert (lone["priority"], lone["sensor_ids"]) == ("unconfirmed", ["pole-a"])

        sensors.emit(wire.Label.GUNSHOT, (120.0, 60.0, 1.5), score=UNSURE, with_clips=False)
        hook.wait_for(1, timeout_s=15)
        time.sleep(1.0)  # room for a wrong delivery of the scream to arrive too
        bodies = [json.loads(body) for _, body in hook.requests]
        # One delivery per stage of the alert (provisional once two poles heard it, then located).
        assert {b["incident"]["label"] for b in bodies} == {"gunshot"}
        stages = [b["stage"] for b in bodies]
        assert len(stages) == len(set(stages)) and set(stages) <= {"provisional", "located"}
        shot = bodies[0]["incident"]
        assert shot["priority"] == "alert" and len(shot["sensor_ids"]) >= 2

        listed = {i["incident_id"]: i["priority"] for i in _api(server, "/api/incidents", token)}
        assert listed == {lone["incident_id"]: "unconfirmed", shot["incident_id"]: "alert"}
        held = _api(server, "/api/incidents?priority=unconfirmed", token)
        assert [i["incident_id"] for i in held] == [lone["incident_id"]]
        metrics = (
            urllib.request.urlopen(
                urllib.request.Request(server.api_url + "/metrics", headers={"Authorization": f"Bearer {token}"}),
                timeout=10,
            )
            .read()
            .decode()
        )
        assert 'sed_fusion_incidents_total{label="scream",priority="unconfirmed"} 1.0' in metrics
        # The gunshot was shown first as a provisional incident: an alert at once when its first
        # batch held several poles, else unconfirmed (one unsure pole) and upgraded when the others joined.
        alert_at_once = 'sed_fusion_incidents_total{label="gunshot",priority="alert"} 1.0' in metrics
        upgraded = (
            'sed_fusion_incidents_total{label="gunshot",priority="unconfirmed"} 1.0' in metrics
            and 'sed_fusion_incident_upgrades_total{label="gunshot"} 1.0' in metrics
        )
        assert alert_at_once or upgraded, [line for line in metrics.splitlines() if "sed_fusion_incident" in line]
    finally:
        hook.close()


def test_a_restarted_node_keeps_the_noisy_flags_of_the_last_hour_and_drops_stale_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fusion.sqlite'}"
    store = Store(url)
    now_ns = time.time_ns()
    for sensor in ("pole-1", "pole-2"):
        store.touch_sensor(sensor, wire.Position(x_m=0.0, y_m=0.0), seen_at_ns=now_ns)
    for n in range(21):  # one more than the default sensor_max_per_hour, all within the hour
        store.add_detection(detection(n, "pole-1"), received_at_ns=now_ns - (30 * 60 - n) * 10**9)
    store.set_noisy_labels("pole-2", [wire.Label.GUNSHOT])  # left by the previous run: its rate has gone
    store.close()

    node = NodeThread(tmp_path, url=url).start()
    try:
        flags = {s.sensor_id: s.noisy_labels for s in node.store.list_sensors()}
        assert flags == {"pole-1": (wire.Label.GUNSHOT,), "pole-2": ()}
    finally:
        node.close()
