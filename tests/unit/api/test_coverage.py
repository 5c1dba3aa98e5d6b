"""GET /api/coverage: the newest coverage plan under ``coverage.plan_dir``, signed-in users only, bounded."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sed.api.app import create_app
from sed.config import ServerConfig
from sed.errors import ConfigError
from sed.store import Store


def _plan(name: str, *, p_located: float = 0.5) -> dict[str, Any]:
    """A one-cell plan in the planner's convention (RFC 7946, per-class properties)."""
    ring = [[13.3776, 49.7475], [13.3777, 49.7475], [13.3777, 49.7476], [13.3776, 49.7476], [13.3776, 49.7475]]
    return {
        "type": "FeatureCollection",
        "name": name,
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"gunshot_p_heard": 0.9, "gunshot_p_located": p_located},
            }
        ],
    }


def _write(folder: Path, doc: Any, *, mtime_s: float | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coverage.geojson"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if mtime_s is not None:
        os.utime(path, (mtime_s, mtime_s))
    return path


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    folder = tmp_path / "plans"
    folder.mkdir()
    return folder


@pytest.fixture
def plan_client(make_config: Callable[..., ServerConfig], store: Store, plans: Path) -> Callable[..., TestClient]:
    def make(**coverage: Any) -> TestClient:
        config = make_config(coverage={"plan_dir": str(plans), **coverage})
        return TestClient(create_app(config, store))

    return make


def test_the_newest_plan_in_the_folder_or_one_below_is_served_as_geojson(
    plan_client: Callable[..., TestClient], plans: Path, operator: dict[str, str]
) -> None:
    _write(plans, _plan("top"), mtime_s=1_700_000_000)
    _write(plans / "2026-12-01", _plan("newest"), mtime_s=1_700_000_300)
    _write(plans / "2026-11-01", _plan("older"), mtime_s=1_700_000_100)
    _write(plans / "deep" / "er", _plan("too deep"), mtime_s=1_700_000_900)  # two levels down: not a plan folder
    with plan_client() as client:
        response = client.get("/api/coverage", headers=operator)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["x-coverage-plan"] == "2026-12-01"
    assert response.headers["last-modified"] == "Tue, 14 Nov 2023 22:18:20 GMT"
    assert response.json()["name"] == "newest"


def test_a_plan_written_while_the_server_runs_shows_at_the_next_request(
    plan_client: Callable[..., TestClient], plans: Path, operator: dict[str, str]
) -> None:
    with plan_client() as client:
        assert client.get("/api/coverage", headers=operator).status_code == 404
        _write(plans / "a", _plan("a", p_located=0.1), mtime_s=1_700_000_000)
        assert client.get("/api/coverage", headers=operator).json()["name"] == "a"
        _write(plans / "a", _plan("a", p_located=0.7), mtime_s=1_700_000_050)  # rewritten in place
        body = client.get("/api/coverage", headers=operator).json()
        assert body["features"][0]["properties"]["gunshot_p_located"] == 0.7


def test_signed_out_clients_get_401(plan_client: Callable[..., TestClient], plans: Path) -> None:
    _write(plans, _plan("top"))
    with plan_client() as client:
        assert client.get("/api/coverage").status_code == 401


def test_no_plan_and_no_folder_are_404_saying_what_to_do(
    client: TestClient, plan_client: Callable[..., TestClient], operator: dict[str, str]
) -> None:
    response = client.get("/api/coverage", headers=operator)  # config without [coverage]
    assert response.status_code == 404
    assert response.json()["detail"] == "no coverage plan: the server's config sets no [coverage] plan_dir"
    with plan_client() as with_folder:
        response = with_folder.get("/api/coverage", headers=operator)
    assert response.status_code == 404
    assert "no coverage.geojson in coverage.plan_dir" in response.json()["detail"]


def test_a_plan_over_the_size_bound_is_refused_naming_it_and_the_key(
    plan_client: Callable[..., TestClient], plans: Path, operator: dict[str, str]
) -> None:
    _write(plans / "city", _plan("x" * 3000))
    with plan_client(max_plan_bytes=2048) as client:
        response = client.get("/api/coverage", headers=operator)
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("coverage plan city/coverage.geojson is ") and "coverage.max_plan_bytes" in detail
    assert str(plans) not in detail  # the server's folders are not shown to operators


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"coverage plan bad/coverage.geojson: not JSON \("),
        (json.dumps({"type": "Feature", "features": []}), r"type 'Feature'; expected a GeoJSON FeatureCollection"),
        (json.dumps([1, 2]), r"type 'list'; expected a GeoJSON FeatureCollection"),
    ],
)
def test_a_plan_that_is_not_a_feature_collection_is_one_clear_error(
    plan_client: Callable[..., TestClient], plans: Path, operator: dict[str, str], content: str, message: str
) -> None:
    _write(plans / "bad", content)
    with plan_client() as client:
        response = client.get("/api/coverage", headers=operator)
    assert response.status_code == 500
    assert re.search(message, response.json()["detail"])


def test_config_refuses_a_missing_plan_dir_and_bad_keys(
    make_config: Callable[..., ServerConfig], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"coverage.plan_dir = '.*nowhere'; no such file or directory"):
        make_config(coverage={"plan_dir": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match=r"coverage.max_plan_bytes"):
        make_config(coverage={"max_plan_bytes": 10})
    with pytest.raises(ConfigError, match=r"coverage.plan_folder"):
        make_config(coverage={"plan_folder": str(tmp_path)})
