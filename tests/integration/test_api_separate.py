"""`sed fusion` and `sed api` as separate processes on one database, live push over ZeroMQ."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from sed import wire
from sed.api.auth import hash_password, issue_token
from sed.api.simulate import SimulatedSensors
from sed.keys import NetworkKeys
from sed.store import Role, Store
from tests.unit.api.test_live import SseClient

POLES = {"p1": (0.0, 0.0, 5.0), "p2": (150.0, 0.0, 5.0), "p3": (150.0, 120.0, 5.0), "p4": (0.0, 120.0, 5.0)}
STARTUP_TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_line(path: Path, pattern: str, process: subprocess.Popen) -> re.Match[str]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text() if path.exists() else "")
        if match:
            return match
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited {process.returncode}: {path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in {path} within {STARTUP_TIMEOUT_S} s: {path.read_text()}")


def test_separate_fusion_and_api_processes_push_incidents_live(tmp_path: Path) -> None:
    keys = NetworkKeys.create(tmp_path, list(POLES))
    url = f"sqlite:///{tmp_path / 'sed.sqlite'}"
    config = {
        "fusion": {
            "bind_endpoint": "tcp://127.0.0.1:0",
            "secret_key_file": str(keys.fusion_secret_key_file),
            "authorized_keys_dir": str(keys.authorized_keys_dir),
            "association_wait_s": 0.5,
        },
        "api": {"host": "127.0.0.1", "port": 0, "incident_feed_endpoint": f"tcp://127.0.0.1:{_free_port()}"},
        "store": {"url": url},
    }
    config_path = tmp_path / "server.toml"
    config_path.write_text(tomli_w.dumps(config))
    store = Store(url)
    store.accounts.add_user("ops", password_hash=hash_password("separate processes"), role=Role.OPERATOR, now_ns=0)
    token, _ = issue_token(store, "ops", label="test", now_ns=time.time_ns(), ttl_s=600)
    processes = []
    try:
        for command in ("fusion", "api"):
            log = tmp_path / f"{command}.log"
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sed.cli", command, "--config", str(config_path)],
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
        fusion_endpoint = _wait_for_line(tmp_path / "fusion.log", r"listening for sensors on (\S+)", processes[0])[1]
        api_url = _wait_for_line(tmp_path / "api.log", r"API listening on (\S+)", processes[1])[1]
        client = SseClient(api_url, {"Authorization": f"Bearer {token}"})
        time.sleep(0.5)  # the API's SUB socket has connected to the fusion node's PUB
        sensors = SimulatedSensors(fusion_endpoint, keys, POLES, tmp_path)
        try:
            sensors.emit(wire.Label.SCREAM, (70.0, 40.0, 1.5), emission_ns=time.time_ns() - 600_000_000)
            first = client.next_event()  # alert first: the provisional incident, then the same id located
            assert first["incident"]["stage"] == "provisional" and first["incident"]["position"] is None
            event = first
            while event["incident"]["stage"] != "located":  # bounded by the reader's 10 s timeout
                event = client.next_event()
        finally:
            sensors.close()
            client.close()
        assert event["incident"]["label"] == "scream"
        assert sorted(event["incident"]["sensor_ids"]) == sorted(POLES)
        position = event["incident"]["position"]
        assert abs(position["x_m"] - 70.0) < 2.0 and abs(position["y_m"] - 40.0) < 2.0
        stored = store.get_incident(event["incident"]["incident_id"])
        assert stored is not None and json.loads(json.dumps(stored.sensor_ids)) == sorted(POLES)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            assert process.wait(timeout=20) == 0, (process.args, (tmp_path / f"{process.args[3]}.log").read_text())
        store.close()
