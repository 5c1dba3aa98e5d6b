"""Every parameter a client sends is bounded: out-of-range integers, NUL bytes and control
characters are a 422 naming the field, never a 500, and a 422 never repeats a secret."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sed.api.params import INT64_MAX, public_validation_errors
from sed.store import Store
from tests.unit.store.test_store import incident

TOO_BIG = str(INT64_MAX + 1)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/incidents", {"since_ns": TOO_BIG}),
        ("/api/incidents", {"until_ns": "99999999999999999999999"}),
        ("/api/incidents", {"offset": TOO_BIG}),
        ("/api/incidents", {"x_min_m": "nan"}),
        ("/api/incidents", {"y_max_m": "inf"}),
        ("/api/export/incidents.geojson", {"since_ns": TOO_BIG}),
        ("/api/audit", {"since_ns": TOO_BIG}),
        ("/api/audit", {"target": "a\x00b"}),
        ("/api/audit", {"action": "login\r\nforged"}),
        ("/api/rules/" + TOO_BIG + "/deliveries", {}),
        ("/api/rules/0/deliveries", {}),
        ("/api/rules/2147483648/deliveries", {}),  # PostgreSQL keeps row ids as 32-bit INTEGER
        ("/api/incidents/a%00b", {}),
        ("/api/clips/a%00b", {}),
    ],
)
def test_out_of_range_query_and_path_values_are_422_naming_the_field(
    client: TestClient, admin: dict[str, str], path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params, headers=admin)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][0] in {"query", "path"} and error["msg"]


def test_bodies_refuse_huge_ids_nul_bytes_control_characters_and_non_finite_numbers(
    client: TestClient, admin: dict[str, str]
) -> None:
    def status(method: str, path: str, body: object) -> int:
        return client.request(method, path, json=body, headers=admin).status_code

    assert status("PATCH", f"/api/rules/{TOO_BIG}", {"enabled": True}) == 422
    assert status("DELETE", f"/api/rules/{TOO_BIG}", None) == 422
    rule = {"name": "north", "url": "https://hooks.example/sed", "secret": "s" * 20}
    assert status("POST", "/api/rules", {**rule, "name": "a\x00b"}) == 422
    assert status("POST", "/api/rules", {**rule, "url": "https://hooks.example/" + "a" * 600}) == 422
    # 200 characters sent, 1,200 once percent-encoded: more than the store's column holds
    assert status("POST", "/api/rules", {**rule, "url": "https://hooks.example/" + "é" * 200}) == 422
    assert status("POST", "/api/rules", {**rule, "labels": ["gunshot"] * 40}) == 422
    # Python's json module reads the NaN literal; the store and the JSON answer could not hold it
    nan_rule = client.post(
        "/api/rules", content=b'{"name": "n", "url": "https://h.example/", "x_min_m": NaN}', headers=admin
    )
    assert nan_rule.status_code == 422
    assert status("PUT", "/api/sensors/pole-1", {"description": "line one\nline two"}) == 422
    assert status("POST", "/api/users", {"username": "eve", "password": "long enough\x00pw"}) == 422
    assert status("POST", "/api/rules", rule) == 201  # the same body, well formed, is fine


def test_review_notes_keep_line_breaks_but_refuse_other_control_characters(
    client: TestClient, store: Store, operator: dict[str, str]
) -> None:
    store.save_incident(incident("i1", [], origin_ns=100), updated_at_ns=1)
    review = "/api/incidents/i1/review"
    assert client.post(review, json={"action": "note", "text": "a\x07b"}, headers=operator).status_code == 422
    assert client.post(review, json={"action": "note", "text": "car\nbackfire"}, headers=operator).status_code == 200


def test_anonymous_login_refuses_nul_and_control_characters(client: TestClient) -> None:
    for username in ("ali\x00ce", "alice\r\nadmin", "x" * 65):
        response = client.post("/api/auth/login", json={"username": username, "password": "whatever"})
        assert response.status_code == 422, (username, response.text)


def test_422_never_repeats_a_password_or_secret(client: TestClient, admin: dict[str, str]) -> None:
    secret_password = "hunter2-but-longer\x00"
    login = client.post("/api/auth/login", json={"username": "alice", "password": secret_password})
    assert login.status_code == 422 and "hunter2" not in login.text
    wrong_type = client.post("/api/auth/login", json={"username": ["alice"], "password": "hunter2-but-longer"})
    assert wrong_type.status_code == 422 and "hunter2" not in wrong_type.text
    user = client.post("/api/users", json={"username": "bad name", "password": "hunter2-but-longer"}, headers=admin)
    assert user.status_code == 422 and "hunter2" not in user.text
    rule = {"name": "r", "url": "not a url", "secret": "hunter2-hunter2-hunter2\x00"}
    answer = client.post("/api/rules", json=rule, headers=admin)
    assert answer.status_code == 422 and "hunter2" not in answer.text


def test_422_names_short_non_secret_values_received() -> None:
    errors = [
        {"type": "less_than_equal", "loc": ("query", "since_ns"), "msg": "too big", "input": TOO_BIG},
        {"type": "string_too_short", "loc": ("body", "password"), "msg": "short", "input": "pw"},
        {"type": "missing", "loc": ("body", "password"), "msg": "missing", "input": {"username": "a", "pw": "x"}},
        {"type": "finite_number", "loc": ("query", "x_min_m"), "msg": "finite", "input": float("nan")},
        {"type": "string_too_long", "loc": ("query", "target"), "msg": "long", "input": "t" * 500},
    ]
    public = public_validation_errors(errors)
    assert public[0] == {"type": "less_than_equal", "loc": ["query", "since_ns"], "msg": "too big", "input": TOO_BIG}
    assert ["input" in e for e in public] == [True, False, False, False, True]
    assert len(public[4]["input"]) < 100
