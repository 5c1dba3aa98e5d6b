"""The dashboard's coverage layer in headless Chromium against a real server: the toggle fetches the
newest plan under ``coverage.plan_dir`` and draws its bands semi-transparent; switching it off removes
them; with no plan yet, the toggle says so and stays off."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sed.api.auth import hash_password
from sed.api.simulate import SimulatedSensors
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.server import Server
from sed.store import Role
from tests.integration.test_dashboard import (
    OPERATOR,
    OPERATOR_PASSWORD,
    POLES,
    operator_logged_in,
    playwright_api,
)

pytestmark = pytest.mark.slow

ORIGIN_LAT_DEG, ORIGIN_LON_DEG = 49.7475, 13.3776
EARTH_RADIUS_M = 6_371_008.8


def _lon_lat(x_m: float, y_m: float) -> list[float]:
    lat = ORIGIN_LAT_DEG + math.degrees(y_m / EARTH_RADIUS_M)
    lon = ORIGIN_LON_DEG + math.degrees(x_m / (EARTH_RADIUS_M * math.cos(math.radians(ORIGIN_LAT_DEG))))
    return [round(lon, 7), round(lat, 7)]


def _band(label: str, period: str, layer: str, low: float, high: float, x0: float, x1: float) -> dict[str, Any]:
    """One merged band of the planner's layer (sed/coverage/outputs.py: properties per class, period, quantity)."""
    ring = [_lon_lat(x, y) for x, y in ((x0, -20.0), (x1, -20.0), (x1, 170.0), (x0, 170.0), (x0, -20.0))]
    return {
        "type": "Feature",
        "properties": {
            "label": label,
            "period": period,
            "layer": layer,
            "band_min": low,
            "band_max": high,
            "area_m2": (x1 - x0) * 190.0,
            "mean_p_heard": 0.95,
            "mean_expected_sensors": 3.4,
            "mean_p_located": (low + high) / 2,
            "median_error_95_m": 12.5,
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


PLAN = {
    "type": "FeatureCollection",
    "sed_coverage": {"cell_m": 10},
    "features": [
        _band("gunshot", "day", "located", 0.5, 0.9, -20.0, 100.0),
        _band("gunshot", "day", "located", 0.9, 1.0, 100.0, 220.0),
        _band("gunshot", "day", "heard", 0.9, 1.0, -20.0, 220.0),
        _band("scream", "night", "located", 0.1, 0.5, 0.0, 50.0),
    ],
}


@pytest.fixture
def city_with_plans(tmp_path: Path) -> Iterator[tuple[Server, SimulatedSensors, Path]]:
    keys = NetworkKeys.create(tmp_path, list(POLES))
    plans = tmp_path / "plans"
    plans.mkdir()
    config: ServerConfig = parse_config(
        {
            "site": {"name": "Test district", "origin_lat_deg": ORIGIN_LAT_DEG, "origin_lon_deg": ORIGIN_LON_DEG},
            "fusion": {
                "bind_endpoint": "tcp://127.0.0.1:0",
                "secret_key_file": str(keys.fusion_secret_key_file),
                "authorized_keys_dir": str(keys.authorized_keys_dir),
            },
            "api": {"host": "127.0.0.1", "port": 0},
            "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
            "coverage": {"plan_dir": str(plans)},
        },
        ServerConfig,
    )
    server = Server(config)
    server.start()
    server.store.accounts.add_user(
        OPERATOR, password_hash=hash_password(OPERATOR_PASSWORD), role=Role.OPERATOR, now_ns=time.time_ns()
    )
    sensors = SimulatedSensors(server.fusion_endpoint, keys, POLES, tmp_path, temperature_c=config.site.temperature_c)
    yield server, sensors, plans
    sensors.close()
    server.stop()


def test_the_coverage_toggle_shows_and_hides_the_latest_plan(
    city_with_plans: tuple[Server, SimulatedSensors, Path],
) -> None:
    server, _sensors, plans = city_with_plans
    bands = "#map path.coverage-band"
    with playwright_api.sync_playwright() as pw:
        browser, page, errors = operator_logged_in(pw, server)
        assert page.locator(bands).count() == 0
        assert page.is_hidden("#coverage-layer")

        page.click("#coverage-on")  # no plan written yet (click: the box unchecks itself at once)
        page.wait_for_function("() => document.querySelector('#coverage-status').textContent.includes('no coverage')")
        assert not page.is_checked("#coverage-on") and page.locator(bands).count() == 0

        (plans / "2026-12-05").mkdir()
        (plans / "2026-12-05" / "coverage.geojson").write_text(json.dumps(PLAN))
        page.check("#coverage-on")
        page.wait_for_function(f"() => document.querySelectorAll('{bands}').length === 2")
        assert page.input_value("#coverage-layer") == "gunshot|day|located"
        assert "plan 2026-12-05" in page.inner_text("#coverage-status")
        opacity = page.eval_on_selector(bands, "node => getComputedStyle(node).fillOpacity")
        assert 0 < float(opacity) < 1  # semi-transparent: the streets under it stay visible
        assert page.locator(f"{bands}.band-high").count() == 1 and page.locator(f"{bands}.band-mid").count() == 1
        # drawn under the sensors: every band precedes the first sensor marker in the SVG
        assert page.evaluate(
            "() => { const kids = [...document.querySelector('#map').children];"
            " const last = kids.map(k => k.classList.contains('coverage-band')).lastIndexOf(true);"
            " return last >= 0 && last < kids.findIndex(k => k.classList.contains('sensor-label')); }"
        )
        # the legend is the quantity's whole scale, as the planner banded it for every class
        assert page.locator("#coverage-legend > span").all_inner_texts() == ["0.1–0.5", "0.5–0.9", "0.9–1"]

        page.select_option("#coverage-layer", "gunshot|day|heard")
        page.wait_for_function(f"() => document.querySelectorAll('{bands}').length === 1")
        page.select_option("#coverage-layer", "scream|night|located")
        page.wait_for_function(f"() => document.querySelectorAll('{bands}.band-low').length === 1")

        page.uncheck("#coverage-on")
        page.wait_for_function(f"() => document.querySelectorAll('{bands}').length === 0")
        assert page.is_hidden("#coverage-layer") and page.is_hidden("#coverage-legend")
        assert errors == []
        browser.close()
