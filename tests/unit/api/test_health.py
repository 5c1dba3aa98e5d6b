"""/healthz: 200 while the database answers and every worker turns; 503 when one dies or stalls."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from sed.supervise import Liveness

WORKERS = {"live-feed", "webhooks", "retention"}


def _wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_healthy_api_reports_each_worker_alive_and_keeping_up(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] is True and body["key_files_ok"] is None
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == WORKERS
    assert all(w["alive"] and not w["stalled"] and w["behind_s"] < 5 for w in workers.values())
    assert workers["live-feed"]["backlog"] == 0 and workers["webhooks"]["backlog"] == 0


def test_a_worker_killed_by_a_fault_in_its_loop_turns_health_red_without_saying_why(client: TestClient) -> None:
    feed = client.app.state.feed

    def fault() -> None:
        raise RuntimeError("injected fault at /etc/sed/secret.key")

    feed.liveness.beat = fault  # the next turn of the feed's loop raises
    _wait_until(lambda: client.app.state.supervisor.failed.is_set())
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert {w["name"]: w["alive"] for w in body["workers"]}["live-feed"] is False
    assert "secret" not in response.text and "injected" not in response.text  # anonymous: the log says why


def test_a_worker_whose_loop_stops_turning_is_stalled(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    webhooks = client.app.state.webhooks.liveness
    monkeypatch.setattr(webhooks, "stall_after_s", 0.3)
    monkeypatch.setattr(webhooks, "beat", lambda: None)  # alive, but as if stuck in one turn
    time.sleep(0.4)
    response = client.get("/healthz")
    assert response.status_code == 503
    (worker,) = [w for w in response.json()["workers"] if w["name"] == "webhooks"]
    assert worker["alive"] and worker["stalled"] and worker["behind_s"] >= 0.3


def test_an_unreachable_database_is_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def down() -> None:
        raise ConnectionRefusedError("postgresql://sed:password@db")

    monkeypatch.setattr(client.app.state.store, "ping", down)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] is False
    assert "password" not in response.text


def test_unreadable_key_files_are_a_flag_not_an_outage(client: TestClient) -> None:
    fusion = Liveness("fusion")
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.01):
            fusion.beat()

    fusion.problems = ["/etc/sed/authorized/junk.key: not a CURVE public key"]
    client.app.state.supervisor.watch(fusion)
    fusion.start(loop)
    try:
        response = client.get("/healthz")
    finally:
        fusion.stopping()
        stop.set()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["key_files_ok"] is False
    assert "junk" not in response.text
