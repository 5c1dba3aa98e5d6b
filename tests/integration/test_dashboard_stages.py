"""Alert first, refine later on the dashboard, in headless Chromium against a real server: a provisional
incident appears at once at the pole that heard it, marked "provisional — locating"; when the same
incident id is located its one marker moves and turns solid; an older revision arriving late changes
nothing; a merged incident's marker and list row disappear."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sed import wire
from sed.api.simulate import SimulatedSensors
from sed.fusion.incidents import IncidentBuilder
from sed.server import Server
from tests.integration.test_dashboard import (
    POLES,
    city,  # noqa: F401  (the fixture)
    operator_logged_in,
    playwright_api,
)

pytestmark = pytest.mark.slow

Stage = wire.IncidentStage
MARKER = "#map circle.incident-dot[data-id='{}']"


def _detection(sensor_id: str, arrival_ns: int) -> wire.Detection:
    x_m, y_m, z_m = POLES[sensor_id]
    return wire.Detection(
        detection_id=f"{sensor_id}:{arrival_ns}:gunshot",
        sensor_id=sensor_id,
        label=wire.Label.GUNSHOT,
        score=0.95,
        arrival_time_ns=arrival_ns,
        arrival_uncertainty_ns=100_000,
        duration_ms=300.0,
        peak_dbfs=-6.0,
        position=wire.Position(x_m=x_m, y_m=y_m, z_m=z_m),
        clock_status=wire.ClockStatus.SYNCED,
    )


def _incident(
    incident_id: str, detections: list[wire.Detection], *, stage: Stage, revision: int, **changes: object
) -> wire.Incident:
    located = stage is Stage.LOCATED
    return wire.Incident(
        incident_id=incident_id,
        label=wire.Label.GUNSHOT,
        score=0.95,
        origin_time_ns=detections[0].arrival_time_ns - 300_000_000,
        position=wire.Position(x_m=120.0, y_m=60.0, z_m=1.5) if located else None,
        uncertainty_m=4.0 if located else None,
        covariance_m2=[2.0, 0.0, 2.0] if located else None,
        detection_ids=[d.detection_id for d in detections],
        sensor_ids=sorted({d.sensor_id for d in detections}),
        created_at_ns=time.time_ns(),
        stage=stage,
        revision=revision,
        **changes,
    )


def _push(server: Server, incident: wire.Incident) -> None:
    """What the fusion node does with each update: store it, then announce it to the live feed."""
    server.store.save_incident(incident, updated_at_ns=time.time_ns())
    server.app.state.feed.announce_incident(incident)


def _centre(page, selector: str) -> tuple[float, float]:
    marker = page.locator(selector)
    return float(marker.get_attribute("cx")), float(marker.get_attribute("cy"))


def _pole_on_map(page, sensor_id: str) -> tuple[float, float]:
    """The pole's marker position, from its label (drawn 10 px right of it, or left when flipped)."""
    label = page.locator("#map text.sensor-label", has_text=sensor_id)
    x, y = float(label.get_attribute("x")), float(label.get_attribute("y"))
    return (x + 10 if label.get_attribute("text-anchor") == "end" else x - 10), y - 4


def test_a_provisional_incident_appears_at_once_then_moves_when_located_and_a_merged_one_disappears(
    city: tuple[Server, SimulatedSensors],  # noqa: F811
) -> None:
    server, _sensors = city
    now_ns = time.time_ns()
    first = _detection("pole-c", now_ns)
    later = [_detection("pole-a", now_ns + 200_000_000), _detection("pole-d", now_ns + 150_000_000)]
    stray = _detection("pole-a", now_ns + 5_000_000_000)
    for detection in (first, *later, stray):
        server.store.add_detection(detection, received_at_ns=time.time_ns())

    with playwright_api.sync_playwright() as pw:
        browser, page, errors = operator_logged_in(pw, server)

        _push(server, _incident("shot-1", [first], stage=Stage.PROVISIONAL, revision=0))
        page.wait_for_selector(MARKER.format("shot-1") + ".stage-provisional", timeout=10_000)
        row = page.locator("#incident-list li.incident[data-id='shot-1']")
        assert "provisional — locating" in row.inner_text() and "stage-provisional" in row.get_attribute("class")
        assert page.locator("#map text.stage-label[data-id='shot-1']").text_content() == "provisional — locating"
        assert page.locator(MARKER.format("shot-1")).get_attribute("fill") == "none"  # hollow: not a position
        provisional_at = _centre(page, MARKER.format("shot-1"))
        assert provisional_at == pytest.approx(_pole_on_map(page, "pole-c"), abs=0.5)

        _push(server, _incident("shot-1", [first, *later], stage=Stage.LOCATED, revision=2))
        page.wait_for_selector(MARKER.format("shot-1") + ".stage-located", timeout=10_000)
        assert page.locator(MARKER.format("shot-1")).count() == 1  # moved, not duplicated
        assert page.locator("#incident-list li.incident[data-id='shot-1']").count() == 1
        assert page.locator("#map text.stage-label").count() == 0
        located_at = _centre(page, MARKER.format("shot-1"))
        assert located_at != pytest.approx(provisional_at, abs=5.0)
        assert "provisional" not in page.locator("#incident-list li.incident[data-id='shot-1']").inner_text()

        # An older revision overtaken on the way (as from another API process) is dropped by the page.
        stale = {**_dashboard_view(page, "shot-1"), "stage": "provisional", "revision": 1, "position": None}
        page.evaluate("(data) => handleEvent('event: incident\\ndata: ' + data)", json.dumps({"incident": stale}))
        assert page.locator(MARKER.format("shot-1") + ".stage-located").count() == 1
        assert _centre(page, MARKER.format("shot-1")) == located_at

        _push(server, _incident("shot-2", [stray], stage=Stage.PROVISIONAL, revision=0))
        page.wait_for_selector(MARKER.format("shot-2"), timeout=10_000)
        assert page.locator("#incident-list li.incident").count() == 2
        _push(server, _incident("shot-2", [stray], stage=Stage.MERGED, revision=1, merged_into="shot-1"))
        page.wait_for_selector(MARKER.format("shot-2"), state="detached", timeout=10_000)
        assert page.locator("#incident-list li.incident[data-id='shot-2']").count() == 0
        assert page.locator("#incident-list li.incident").count() == 1
        assert page.locator(MARKER.format("shot-1")).count() == 1
        assert errors == []
        browser.close()


def _dashboard_view(page, incident_id: str) -> dict:
    """The incident as the page holds it (IncidentOut), to send back a modified copy."""
    return page.evaluate(f"() => state.incidents.get({json.dumps(incident_id)})")


def test_the_dashboard_says_when_the_fusion_node_falls_behind_and_when_it_caught_up(
    city: tuple[Server, SimulatedSensors],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, sensors = city
    with playwright_api.sync_playwright() as pw:
        browser, page, errors = operator_logged_in(pw, server)
        badge = page.locator("#node-health")
        assert badge.is_hidden()
        # Association slowed to 1.5 s a turn: detections queue behind it for longer than the 1 s bound.
        slow = threading.Event()
        slow.set()
        poll = IncidentBuilder.poll

        def slow_poll(builder: IncidentBuilder, now_ns: int) -> list[wire.Incident]:
            if slow.is_set():
                time.sleep(1.5)
            return poll(builder, now_ns)

        monkeypatch.setattr(IncidentBuilder, "poll", slow_poll)
        deadline = time.monotonic() + 20.0
        k = 0
        while badge.is_hidden() and time.monotonic() < deadline:  # a steady stream keeps the queue behind
            sensors.emit(wire.Label.GUNSHOT, (100.0 + k % 50, 60.0, 1.5), with_clips=False)
            page.wait_for_timeout(200)
            k += 1
        assert badge.text_content().startswith("⚠ overloaded: association ")
        slow.clear()  # caught up: the badge goes
        page.wait_for_selector("#node-health[hidden]", state="attached", timeout=20_000)
        assert errors == []
        browser.close()
