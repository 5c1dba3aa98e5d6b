"""What one client may cost: bodies above the limit are refused while they stream, and
failed logins are throttled per user and per address."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from sed.api.app import create_app
from sed.api.limits import LoginThrottle
from sed.config import ServerConfig
from sed.store import Store
from tests.unit.api.conftest import PASSWORD


def _chunks(total_bytes: int, sent: list[int]) -> Iterator[bytes]:
    """A chunked (no Content-Length) body that records how much of it was pulled."""
    chunk = b" " * 4096
    while sum(sent) < total_bytes:
        sent.append(len(chunk))
        yield chunk


def test_a_login_larger_than_the_anonymous_limit_is_413_before_it_is_read(client: TestClient) -> None:
    body = b'{"username": "alice", "password": "' + b"x" * (20 << 10) + b'"}'
    response = client.post("/api/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "16384 bytes" in response.json()["detail"]


def test_a_chunked_body_is_cut_off_at_the_limit_not_read_to_the_end(client: TestClient) -> None:
    # TestClient gathers a body before sending it, so speak ASGI directly: 32 MB in 4 KiB chunks
    pulled: list[int] = []
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        pulled.append(4096)
        return {"type": "http.request", "body": b" " * 4096, "more_body": sum(pulled) < 32 << 20}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/auth/login",
        "raw_path": b"/api/auth/login",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("10.0.0.9", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert sum(pulled) <= (16 << 10) + 4096  # stopped at the 16 KiB limit, far from the 32 MB offered


def test_a_signed_in_client_gets_the_larger_limit_and_no_more(
    make_config: Callable[..., ServerConfig], admin: dict[str, str], store: Store
) -> None:
    config = make_config(api={"max_body_bytes": 4096, "max_anonymous_body_bytes": 512})
    with TestClient(create_app(config, store)) as client:
        note = {"description": "d" * 150}
        assert client.put("/api/sensors/pole-1", json=note, headers=admin).status_code == 404  # read, not refused
        big = {"name": "r", "url": "https://h.example/", "labels": ["gunshot"] * 600}
        assert client.post("/api/rules", json=big, headers=admin).status_code == 413
        sent: list[int] = []
        chunked = client.post(
            "/api/rules", content=_chunks(1 << 20, sent), headers={**admin, "Content-Type": "application/json"}
        )
        assert chunked.status_code == 413  # no Content-Length: counted as it arrives
        no_token = client.put("/api/sensors/pole-1", content=b"x" * 1000)
        assert no_token.status_code == 413  # no token: the anonymous limit


def test_failed_logins_are_throttled_per_user_with_retry_after(
    make_config: Callable[..., ServerConfig], store: Store, admin: dict[str, str]
) -> None:
    config = make_config(api={"login_max_failures": 3, "login_window_s": 60})
    with TestClient(create_app(config, store)) as client:
        clock = _FakeClock(client)
        for _ in range(3):
            wrong = client.post("/api/auth/login", json={"username": "alice", "password": "guess-guess"})
            assert wrong.status_code == 401
            clock.now += 1
        blocked = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert blocked.status_code == 429  # even the right password, until the window passes
        assert int(blocked.headers["Retry-After"]) == 57  # failures at 0, 1, 2 s; now 3 s; the first leaves at 60 s
        clock.now += 57
        assert client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_throttle_per_address_spares_other_addresses_and_users() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window_s=10, clock=lambda: now[0])
    attacker = [f"user:victim{n}" for n in range(3)]
    for key in attacker[:2]:
        throttle.failed([key, "addr:10.0.0.66"])
    assert throttle.retry_after_s(throttle.keys(username="victim2", remote_addr="10.0.0.66")) == 10
    assert throttle.retry_after_s(throttle.keys(username="victim2", remote_addr="10.0.0.7")) is None
    assert throttle.retry_after_s(throttle.keys(username="oscar", remote_addr="10.0.0.7")) is None
    now[0] = 10.0  # sliding: both failures left the window
    assert throttle.retry_after_s(throttle.keys(username="victim2", remote_addr="10.0.0.66")) is None


def test_a_correct_login_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=lambda: 0.0)
    throttle.failed(throttle.keys(username="alice", remote_addr="10.0.0.1"))
    throttle.failed(throttle.keys(username="alice", remote_addr="10.0.0.1"))
    throttle.succeeded(username="alice")
    assert throttle.retry_after_s(["user:alice"]) is None
    assert throttle.retry_after_s(["addr:10.0.0.1"]) == 60


def test_throttle_memory_is_bounded_forgetting_the_stalest_keys() -> None:
    throttle = LoginThrottle(max_failures=1, window_s=60, clock=lambda: 0.0, max_keys=100)
    for n in range(1000):
        throttle.failed([f"user:u{n}"])
    assert len(throttle._failures) == 100
    assert throttle.retry_after_s(["user:u999"]) == 60 and throttle.retry_after_s(["user:u0"]) is None


class _FakeClock:
    def __init__(self, client: TestClient) -> None:
        self.now = 1000.0
        throttle: LoginThrottle = client.app.state.login_throttle  # type: ignore[attr-defined]
        throttle.clock = lambda: self.now


@pytest.fixture(autouse=True)
def _admin_exists(admin: dict[str, str]) -> None:
    """alice exists with PASSWORD in every test."""
