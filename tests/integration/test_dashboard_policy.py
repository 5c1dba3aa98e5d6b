"""The dashboard and the false-alarm policy, in headless Chromium against a real server: an unconfirmed
incident is listed grey without flashing and hidden by the priority filter, an alert flashes, and a
noisy pole says so in the sensor table."""

from __future__ import annotations

import time

import pytest

from sed import wire
from sed.api.simulate import SimulatedSensors
from sed.server import Server
from tests.integration.test_dashboard import (
    city,  # noqa: F401  (the fixture)
    operator_logged_in,
    playwright_api,
)

pytestmark = pytest.mark.slow


def test_unconfirmed_incidents_are_muted_and_filterable_and_noisy_poles_flagged(
    city: tuple[Server, SimulatedSensors],  # noqa: F811
) -> None:
    server, sensors = city
    with playwright_api.sync_playwright() as pw:
        browser, page, errors = operator_logged_in(pw, server)

        sensors.emit(wire.Label.SCREAM, (10.0, 10.0, 1.5), score=0.5, sensor_ids=["pole-a"], with_clips=False)
        row = page.wait_for_selector("#incident-list li.incident.muted-priority", timeout=15_000)
        assert "unconfirmed" in row.inner_text().lower()
        assert page.locator("#incident-list li.incident.fresh").count() == 0  # no flash, no alert sound
        assert "0 new alerts" in page.inner_text("#counts")

        page.select_option("#filter-priority", "alert")
        page.wait_for_function("() => document.querySelectorAll('#incident-list li.incident').length === 0")
        sensors.emit(wire.Label.GUNSHOT, (120.0, 60.0, 1.5), emission_ns=time.time_ns() - 800_000_000)
        alert = page.wait_for_selector("#incident-list li.incident.fresh", timeout=15_000)
        assert "Gunshot" in alert.inner_text() and page.locator("#incident-list li.incident").count() == 1
        page.select_option("#filter-priority", "shown")
        page.wait_for_function("() => document.querySelectorAll('#incident-list li.incident').length === 2")

        server.store.set_noisy_labels("pole-c", [wire.Label.SCREAM])
        cell = page.wait_for_selector("#sensor-table tr[data-sensor='pole-c'] td.health.noisy", timeout=10_000)
        assert cell.inner_text() == "noisy (Scream)"
        assert errors == []
        browser.close()
