"""Live push over a real HTTP socket: committed and reviewed incidents reach a connected client."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import zmq

from sed import wire
from sed.api.app import create_app
from sed.api.server import ApiServer
from sed.config import ServerConfig
from sed.store import Store
from tests.unit.store.test_store import detection, incident


class SseClient:
    """A minimal Server-Sent Events reader (what the dashboard does with fetch)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.connection.request("GET", "/api/live", headers=headers)
        self.response = self.connection.getresponse()

    def next_event(self) -> dict:
        """The next ``incident`` event's data (comments and keep-alives skipped)."""
        kind, data = None, []
        while True:
            line = self.response.readline().decode()
            if line == "":
                raise EOFError("stream ended")
            line = line.rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and kind == "incident":
                return json.loads("\n".join(data))
            elif line == "":
                kind, data = None, []

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def served(config: ServerConfig, store: Store) -> Iterator[tuple[ApiServer, str]]:
    server = ApiServer(create_app(config, store), host="127.0.0.1", port=0)
    url = server.start()
    yield server, url
    server.stop()


def test_a_committed_incident_and_its_review_are_pushed(
    served: tuple[ApiServer, str], store: Store, operator: dict[str, str]
) -> None:
    server, url = served
    client = SseClient(url, operator)
    assert client.response.status == 200
    assert client.response.getheader("content-type").startswith("text/event-stream")
    store.add_detection(detection(1), received_at_ns=1)
    store.save_incident(incident("i1", ["pole-1:1"], origin_ns=100), updated_at_ns=2)
    server._app.state.feed.announce_incident(incident("i1", ["pole-1:1"], origin_ns=100))
    event = client.next_event()
    assert event["incident"]["incident_id"] == "i1" and event["incident"]["status"] == "new"
    assert event["incident"]["position"]["lat_deg"] is not None
    connection = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=10)
    body = json.dumps({"action": "confirm"})
    connection.request("POST", "/api/incidents/i1/review", body, {**operator, "Content-Type": "application/json"})
    assert connection.getresponse().status == 200
    assert client.next_event()["incident"]["status"] == "confirmed"
    client.close()


def test_stopping_the_server_ends_open_streams_promptly(
    config: ServerConfig, store: Store, operator: dict[str, str]
) -> None:
    server = ApiServer(create_app(config, store), host="127.0.0.1", port=0)
    client = SseClient(server.start(), operator)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3.0
    with pytest.raises((EOFError, OSError)):
        client.next_event()
    client.close()


def test_a_separate_api_follows_the_fusion_nodes_incident_feed(
    make_config, store: Store, operator: dict[str, str]
) -> None:
    context = zmq.Context.instance()
    publisher = context.socket(zmq.PUB)  # stands in for `sed fusion`'s PUB socket
    publisher.setsockopt(zmq.LINGER, 0)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    config = make_config(api={"incident_feed_endpoint": f"tcp://127.0.0.1:{port}"})
    server = ApiServer(create_app(config, store, follow_fusion=True), host="127.0.0.1", port=0)
    client = SseClient(server.start(), operator)
    try:
        store.save_incident(incident("far", [], origin_ns=100, label=wire.Label.SCREAM), updated_at_ns=2)
        message = wire.encode(incident("far", [], origin_ns=100, label=wire.Label.SCREAM))
        deadline = time.monotonic() + 10
        client.connection.sock.settimeout(0.3)
        event = None
        while event is None and time.monotonic() < deadline:
            publisher.send(message)  # PUB drops until the subscription has propagated: resend
            try:
                event = client.next_event()
            except TimeoutError:
                continue
        assert event is not None and event["incident"]["label"] == "scream"
    finally:
        client.close()
        server.stop()
        publisher.close()
