"""Webhooks against a real HTTP receiver on 127.0.0.1: signed, filtered per rule, retried, recorded."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest
from fastapi.testclient import TestClient

from sed import wire
from sed.api.app import create_app
from sed.api.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from sed.store import DeliveryStatus, Store
from tests.unit.store.test_store import incident

SECRET = "k3y-for-the-city-hall-receiver"
Stage = wire.IncidentStage


class Receiver:
    """An HTTP server that answers 500 to the first ``n_failures`` POSTs, then 204, keeping each request."""

    def __init__(self, n_failures: int) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.n_failures = n_failures
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.requests) <= receiver.n_failures else 204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(n_failures=2)
    yield r
    r.close()


@pytest.fixture
def fast_retries(make_config) -> object:
    return make_config(api={"webhook_retry_initial_s": 0.05, "webhook_max_attempts": 4, "webhook_timeout_s": 2})


def _announce(client: TestClient, store: Store, message: wire.Incident) -> None:
    store.save_incident(message, updated_at_ns=1)
    client.app.state.feed.announce_incident(message)


def test_matching_incident_is_posted_signed_and_retried_until_accepted(
    fast_retries, store: Store, admin: dict[str, str], receiver: Receiver
) -> None:
    with TestClient(create_app(fast_retries, store)) as client:
        rule = client.post(
            "/api/rules",
            headers=admin,
            json={"name": "gunshots", "url": receiver.url, "labels": ["gunshot"], "min_score": 0.8, "secret": SECRET},
        )
        assert rule.status_code == 201 and rule.json()["secret"] is None and rule.json()["has_own_secret"]
        rule_id = rule.json()["rule_id"]
        _announce(client, store, incident("scream-1", [], origin_ns=50, label=wire.Label.SCREAM))  # filtered out
        _announce(client, store, incident("shot-1", [], origin_ns=100))
        receiver.wait_for(3)
        _announce(client, store, incident("shot-1", [], origin_ns=100))  # an update: not delivered again
        time.sleep(0.3)
        deliveries = client.get(f"/api/rules/{rule_id}/deliveries", headers=admin).json()
    assert len(receiver.requests) == 3
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert {b["incident"]["incident_id"] for b in bodies} == {"shot-1"}
    assert bodies[0]["rule"] == "gunshots" and bodies[0]["event"] == "incident"
    for headers, body in receiver.requests:
        timestamp_s = int(headers[TIMESTAMP_HEADER])
        assert verify(SECRET, timestamp_s, body, headers[SIGNATURE_HEADER])
        assert not verify("another secret entirely", timestamp_s, body, headers[SIGNATURE_HEADER])
        assert headers[DELIVERY_HEADER] == f"{rule_id}:shot-1:located"
    assert deliveries == [
        {
            "incident_id": "shot-1",
            "stage": "located",
            "status": "delivered",
            "attempts": 3,
            "last_error": None,
            "updated_at_ns": deliveries[0]["updated_at_ns"],
        }
    ]


def test_delivery_gives_up_after_the_configured_attempts(fast_retries, store: Store, admin: dict[str, str]) -> None:
    always_failing = Receiver(n_failures=100)
    try:
        with TestClient(create_app(fast_retries, store)) as client:
            created = client.post("/api/rules", headers=admin, json={"name": "all", "url": always_failing.url})
            generated = created.json()["secret"]
            assert generated is not None and len(generated) >= 32  # made by the server, shown once
            _announce(client, store, incident("shot-2", [], origin_ns=100))
            always_failing.wait_for(4)
            time.sleep(0.3)
        (delivery,) = store.webhooks.deliveries()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 4)
        assert "HTTP 500" in (delivery.last_error or "")
        headers, body = always_failing.requests[0]
        assert headers[SIGNATURE_HEADER] == sign(generated, int(headers[TIMESTAMP_HEADER]), body)
        assert len(always_failing.requests) == 4
    finally:
        always_failing.close()


def test_a_stale_signature_is_rejected() -> None:
    body = b'{"event": "incident"}'
    old = int(time.time()) - 3600
    assert not verify(SECRET, old, body, sign(SECRET, old, body))


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _staged(base: wire.Incident, stage: wire.IncidentStage, revision: int, **changes: object) -> wire.Incident:
    return msgspec.structs.replace(base, stage=stage, revision=revision, **changes)


def test_each_stage_of_an_alert_is_posted_once_flagged_and_merged_ones_never(
    fast_retries, store: Store, admin: dict[str, str]
) -> None:
    receiver = Receiver(n_failures=0)
    located = incident("shot-3", [], origin_ns=100)
    provisional = _staged(located, Stage.PROVISIONAL, 0, position=None, uncertainty_m=None, covariance_m2=None)
    try:
        with TestClient(create_app(fast_retries, store)) as client:
            rule_id = client.post(
                "/api/rules", headers=admin, json={"name": "all", "url": receiver.url, "secret": SECRET}
            ).json()["rule_id"]
            _announce(client, store, provisional)
            receiver.wait_for(1)
            _announce(client, store, _staged(located, Stage.LOCATED, 1))
            receiver.wait_for(2)
            _announce(client, store, _staged(located, Stage.LOCATED, 2))  # refined by another pole: not sent
            _announce(
                client, store, _staged(incident("shot-4", [], origin_ns=101), Stage.MERGED, 1, merged_into="shot-3")
            )
            _announce(client, store, incident("shot-5", [], origin_ns=102))  # a sentinel: announced after the two above
            # The feed hands announcements to the dispatcher in order: once the sentinel is
            # posted, the refinement and the merge have been judged (and not claimed).
            receiver.wait_for(3)
            deliveries = client.get(f"/api/rules/{rule_id}/deliveries", headers=admin).json()
    finally:
        receiver.close()
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert [(b["incident"]["incident_id"], b["stage"], b["revision"]) for b in bodies] == [
        ("shot-3", "provisional", 0),
        ("shot-3", "located", 1),
        ("shot-5", "located", 0),
    ]
    assert bodies[0]["incident"]["position"] is None and bodies[0]["incident"]["stage"] == "provisional"
    assert [h[DELIVERY_HEADER] for h, _ in receiver.requests] == [
        f"{rule_id}:shot-3:provisional",
        f"{rule_id}:shot-3:located",
        f"{rule_id}:shot-5:located",
    ]
    for headers, body in receiver.requests:
        assert verify(SECRET, int(headers[TIMESTAMP_HEADER]), body, headers[SIGNATURE_HEADER])
    assert sorted((d["incident_id"], d["stage"], d["status"]) for d in deliveries) == [
        ("shot-3", "located", "delivered"),
        ("shot-3", "provisional", "delivered"),
        ("shot-5", "located", "delivered"),
    ]


def test_a_pending_delivery_of_an_incident_merged_meanwhile_is_superseded_not_sent(
    fast_retries, store: Store, admin: dict[str, str]
) -> None:
    receiver = Receiver(n_failures=1)
    first = _staged(
        incident("shot-6", [], origin_ns=100),
        Stage.PROVISIONAL,
        0,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
    )
    try:
        with TestClient(create_app(fast_retries, store)) as client:
            client.post("/api/rules", headers=admin, json={"name": "all", "url": receiver.url, "secret": SECRET})
            _announce(client, store, first)
            receiver.wait_for(1)  # refused: a retry is due in 50 ms
            store.save_incident(_staged(first, Stage.MERGED, 1, merged_into="shot-0"), updated_at_ns=2)
            _wait_until(lambda: store.webhooks.deliveries()[0].status is not DeliveryStatus.PENDING)
    finally:
        receiver.close()
    (delivery,) = store.webhooks.deliveries()
    assert (delivery.stage, delivery.status, delivery.attempts) == (Stage.PROVISIONAL, DeliveryStatus.SUPERSEDED, 2)
    assert "merged into incident shot-0" in (delivery.last_error or "")
    assert len(receiver.requests) == 1
