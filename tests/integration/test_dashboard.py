"""The dashboard in headless Debian Chromium, against a real server fed by simulated poles over CURVE.

An operator signs in, sees an incident appear live (no reload), opens it, plays the clip,
marks it a false alarm; the change and the clip access are then checked through the API.
Uses the system's /usr/bin/chromium through Playwright (no browser download).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sed import wire
from sed.api.auth import hash_password
from sed.api.simulate import SimulatedSensors
from sed.config import ServerConfig, parse_config
from sed.keys import NetworkKeys
from sed.server import Server
from sed.store import Role

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
POLES = {
    "pole-a": (0.0, 0.0, 6.0),
    "pole-b-east-terminal": (200.0, 0.0, 6.0),  # a long name at the right edge of the map
    "pole-c": (200.0, 150.0, 6.0),
    "pole-d": (0.0, 150.0, 6.0),
}
OPERATOR, OPERATOR_PASSWORD = "dispatcher", "night shift 2024!"
ADMIN, ADMIN_PASSWORD = "chief", "the admin passphrase"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e .[dev])")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} missing (scripts/setup-system.sh)"),
]


@pytest.fixture
def city(tmp_path: Path) -> Iterator[tuple[Server, SimulatedSensors]]:
    keys = NetworkKeys.create(tmp_path, list(POLES))
    config: ServerConfig = parse_config(
        {
            "site": {"name": "Test district", "origin_lat_deg": 49.7475, "origin_lon_deg": 13.3776},
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
    for name, password, role in ((OPERATOR, OPERATOR_PASSWORD, Role.OPERATOR), (ADMIN, ADMIN_PASSWORD, Role.ADMIN)):
        server.store.accounts.add_user(name, password_hash=hash_password(password), role=role, now_ns=time.time_ns())
    sensors = SimulatedSensors(server.fusion_endpoint, keys, POLES, tmp_path, temperature_c=config.site.temperature_c)
    yield server, sensors
    sensors.close()
    server.stop()


def _api(base: str, path: str, token: str | None = None, body: dict | None = None) -> dict | list:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def operator_logged_in(pw: Any, server: Server) -> tuple[Any, Any, list[str]]:
    """Chromium on the dashboard, logged in as the operator, live feed on and the poles listed;
    page errors collect in the returned list."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.api_url)
    page.fill("#login-user", OPERATOR)
    page.fill("#login-password", OPERATOR_PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#live-state.on", timeout=10_000)
    page.wait_for_selector("#sensor-table tbody tr[data-sensor='pole-c']", timeout=10_000)
    return browser, page, errors


def test_operator_sees_a_live_incident_plays_the_clip_and_marks_it_false_alarm(
    city: tuple[Server, SimulatedSensors],
) -> None:
    server, sensors = city
    with playwright_api.sync_playwright() as pw:
        browser, page, errors = operator_logged_in(pw, server)
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        sensors.emit(wire.Label.GUNSHOT, (120.0, 60.0, 1.5), emission_ns=time.time_ns() - 800_000_000)
        row = page.wait_for_selector("#incident-list li.incident.fresh", timeout=15_000)
        assert page.evaluate("window.__sameDocument") is True
        assert "Gunshot" in row.inner_text()
        incident_id = row.get_attribute("data-id")
        # Alert first: the row may show the provisional incident; its marker turns solid once located.
        page.wait_for_selector(f"#map circle.incident-dot.stage-located[data-id='{incident_id}']", timeout=15_000)
        assert page.locator(f"#map circle.incident-dot[data-id='{incident_id}']").count() == 1
        assert page.locator("#map ellipse.ellipse").count() == 1

        page.locator(f"#incident-list li.incident[data-id='{incident_id}']").click()  # the list re-rendered
        page.wait_for_selector("#detail:not([hidden])")
        page.wait_for_selector("#detail-detections button.play:not([disabled])", timeout=10_000)
        page.click("#detail-detections button.play:not([disabled])")
        page.wait_for_selector("#player:not([hidden])", timeout=10_000)
        page.wait_for_function(
            "() => { const a = document.getElementById('clip-audio'); return a.currentTime > 0.05 || a.ended; }",
            timeout=10_000,
        )
        assert page.evaluate("document.getElementById('clip-audio').duration") == pytest.approx(1.5, abs=0.05)
        page.wait_for_function("() => document.getElementById('clip-spectrogram').naturalWidth > 100")

        page.fill("#review-text", "construction site: nail gun")
        page.click("#btn-false-alarm")
        page.wait_for_function(
            "() => document.getElementById('detail-title').textContent.includes('false alarm')", timeout=10_000
        )
        assert errors == []
        browser.close()

    token = _api(server.api_url, "/api/auth/login", body={"username": ADMIN, "password": ADMIN_PASSWORD})["token"]
    detail = _api(server.api_url, f"/api/incidents/{incident_id}", token)
    assert detail["status"] == "false_alarm"
    assert [(r["username"], r["action"], r["text"]) for r in detail["reviews"]] == [
        (OPERATOR, "false_alarm", "construction site: nail gun")
    ]
    plays = _api(server.api_url, "/api/audit?action=clip.play", token)
    assert [entry["username"] for entry in plays] == [OPERATOR]
    assert plays[0]["target"] in {d["detection_id"] for d in detail["detections"]}


def test_at_1600x1000_every_pole_label_and_the_legend_fit_the_map_and_the_console_stays_clean(
    city: tuple[Server, SimulatedSensors],
) -> None:
    server, _sensors = city
    time.sleep(1.0)  # first heartbeats: the poles are in the sensor table
    # a long note in the sensor table once widened the map's column under the detail pane
    server.store.describe_sensor(
        "pole-b-east-terminal", "Klatovská × U Trati, SW corner, lamp 12 next to the tram stop"
    )
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        console_errors: list[str] = []
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(server.api_url)
        page.fill("#login-user", OPERATOR)
        page.fill("#login-password", OPERATOR_PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#live-state.on", timeout=10_000)
        page.wait_for_function(f"() => document.querySelectorAll('#map .sensor-label').length === {len(POLES)}")
        outside = page.evaluate(
            """() => {
                const box = document.getElementById('map').getBoundingClientRect();
                const detail = document.getElementById('detail-pane').getBoundingClientRect();
                // what is visible of the map: its box, less whatever the detail pane covers
                const right = Math.min(box.right, detail.left);
                const map = { left: box.left, top: box.top, bottom: box.bottom, right };
                const inside = (r) => r.left >= map.left - 0.5 && r.right <= map.right + 0.5
                    && r.top >= map.top - 0.5 && r.bottom <= map.bottom + 0.5;
                const items = [...document.querySelectorAll('#map .sensor-label, #map-legend > span')];
                const bad = items.filter((e) => !inside(e.getBoundingClientRect())).map((e) => e.textContent);
                const legend = document.getElementById('map-legend').getBoundingClientRect();
                const scale = document.querySelector('#map .scale-label').getBoundingClientRect();
                const apart = legend.right <= scale.left || scale.bottom <= legend.top || legend.bottom <= scale.top;
                return apart ? bad : [...bad, 'legend over the scale bar'];
            }"""
        )
        assert outside == []
        icon = page.evaluate("document.querySelector('link[rel=icon]').href")
        assert page.request.get(icon).status == 200
        assert page.request.get(server.api_url + "/favicon.ico").status == 200
        assert console_errors == []
        browser.close()
