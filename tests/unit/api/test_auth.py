"""Authentication and roles: nothing but /healthz answers anonymously; operators cannot administer."""

from __future__ import annotations

import re
import time

import numpy as np
from fastapi.testclient import TestClient

from sed import wire
from sed.capture.pipeline import encode_flac
from sed.store import Role, Store
from tests.unit.api.conftest import PASSWORD
from tests.unit.store.test_store import detection, incident

#: Answer without a token: liveness, and the login that hands out tokens.
PUBLIC = {("GET", "/healthz"), ("POST", "/api/auth/login")}
#: Routes only admins may use.
ADMIN_ONLY = [
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("DELETE", "/api/users/eve"),
    ("PUT", "/api/sensors/pole-1"),
    ("DELETE", "/api/sensors/pole-1"),
    ("GET", "/api/rules"),
    ("POST", "/api/rules"),
    ("PATCH", "/api/rules/1"),
    ("DELETE", "/api/rules/1"),
    ("GET", "/api/rules/1/deliveries"),
    ("GET", "/api/audit"),
    ("GET", "/api/export/corpus.zip"),
]
_BODIES = {
    ("POST", "/api/users"): {"username": "eve", "password": "long enough password", "role": "admin"},
    ("PUT", "/api/sensors/pole-1"): {"description": "moved"},
    ("POST", "/api/rules"): {"name": "r", "url": "http://127.0.0.1:9/"},
    ("PATCH", "/api/rules/1"): {"enabled": False},
}


def _api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every documented operation (path parameters filled in), plus the schema itself."""
    routes = [("GET", "/openapi.json")]
    for template, operations in client.app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]*_id\}", "1", template)
        path = re.sub(r"\{[^}]*\}", "x", path)
        routes += [(method.upper(), path) for method in operations]
    return routes


def test_every_endpoint_but_healthz_and_login_refuses_anonymous_and_bad_tokens(client: TestClient) -> None:
    routes = _api_routes(client)
    assert len(routes) >= 25 and ("GET", "/metrics") in routes and ("GET", "/api/live") in routes
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").status_code == 200


def test_the_dashboard_shell_is_public_but_holds_no_data(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 404  # Swagger UI would load a CDN; the schema needs a token


def test_operators_get_403_on_admin_routes_admins_get_through(
    client: TestClient, store: Store, operator: dict[str, str], admin: dict[str, str]
) -> None:
    store.touch_sensor("pole-1", wire.Position(x_m=0, y_m=0), seen_at_ns=1)
    for method, path in ADMIN_ONLY:
        response = client.request(method, path, headers=operator, json=_BODIES.get((method, path)))
        assert response.status_code == 403, (method, path, response.text)
        assert "needs an admin" in response.json()["detail"]
    for method, path in ADMIN_ONLY:
        response = client.request(method, path, headers=admin, json=_BODIES.get((method, path)))
        assert response.status_code in (200, 201, 204, 404, 409), (method, path, response.text)


def test_login_gives_a_token_that_works_until_logout(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    wrong = client.post("/api/auth/login", json={"username": "oscar", "password": "nope"})
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    response = client.post("/api/auth/login", json={"username": "oscar", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"username": "oscar", "role": "operator", "created_at_ns": body["user"]["created_at_ns"]}
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/auth/me", headers=headers).json()["username"] == "oscar"
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    failures = store.accounts.audit_entries(action="login.failed")
    assert sorted(e.username for e in failures) == ["nobody", "oscar"]


def test_passwords_are_stored_as_argon2id_hashes_only(client: TestClient, store: Store, admin: dict[str, str]) -> None:
    weak = client.post("/api/users", headers=admin, json={"username": "eve", "password": "short"})
    assert weak.status_code == 422 and "at least 10" in weak.json()["detail"][0]["msg"]
    created = client.post("/api/users", headers=admin, json={"username": "eve", "password": "a long passphrase"})
    assert created.status_code == 201 and created.json()["role"] == "operator"
    assert (
        client.post("/api/users", headers=admin, json={"username": "eve", "password": "another long one"}).status_code
        == 409
    )
    stored = store.accounts.password_hash("eve")
    assert stored is not None and stored.startswith("$argon2id$") and "a long passphrase" not in stored
    assert client.post("/api/auth/login", json={"username": "eve", "password": "a long passphrase"}).status_code == 200
    assert client.delete("/api/users/alice", headers=admin).status_code == 409  # the last admin stays
    assert client.delete("/api/users/eve", headers=admin).status_code == 204
    assert [u.username for u in store.accounts.list_users()] == ["alice"]
    assert store.accounts.get_user("alice").role is Role.ADMIN


def test_clip_access_is_in_the_audit_log_with_user_and_time(
    client: TestClient, store: Store, operator: dict[str, str], admin: dict[str, str]
) -> None:
    store.add_detection(detection(1), received_at_ns=10)
    store.save_incident(incident("i1", ["pole-1:1"], origin_ns=100), updated_at_ns=1)
    audio = (0.3 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)
    clip = wire.EvidenceClip(
        detection_id="pole-1:1",
        sensor_id="pole-1",
        start_time_ns=1,
        sample_rate_hz=16000,
        data=encode_flac(audio, sample_rate_hz=16000),
    )
    # received now: the app's clip-retention job runs at start-up and deletes clips older than its window
    store.add_clip(clip, received_at_ns=time.time_ns())
    assert client.get("/api/incidents/i1", headers=operator).json()["detections"][0]["has_clip"] is True
    played = client.get("/api/clips/pole-1:1", headers=operator)
    assert played.status_code == 200 and played.headers["content-type"] == "audio/flac"
    assert played.content == clip.data and played.headers["cache-control"] == "no-store"
    picture = client.get("/api/clips/pole-1:1/spectrogram.png", headers=operator)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert client.get("/api/clips/pole-9:9", headers=operator).status_code == 404
    log = client.get("/api/audit", headers=admin, params={"target": "pole-1:1"}).json()
    assert [(e["username"], e["action"]) for e in log] == [("oscar", "clip.spectrogram"), ("oscar", "clip.play")]
    assert all(e["at_ns"] > 1_600_000_000 * 10**9 and e["remote_addr"] for e in log)
