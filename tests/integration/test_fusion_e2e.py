"""A scenario replayed end to end: real poles over CURVE into a real ``sed fusion`` process and store;
every detection acknowledged, and the incidents on the node's feed hold exactly the scenario's detections."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import pytest

from sed import wire
from sed.bench.fusion_e2e import replay_over_curve
from sed.errors import ConfigError
from sed.units import NS_PER_S, speed_of_sound_m_per_s
from tests.databases import BACKENDS, database_url

pytestmark = pytest.mark.slow

#: Two gunshots 2.5 s and 540 m apart, each heard by the poles of a 250 m grid within 400 m, each
#: detection leaving its pole 0.9 s after the sound arrived there.
POLE_SPACING_M, HEARING_M, DETECTION_DELAY_S = 250.0, 400.0, 0.9
SOURCES = (((120.0, 140.0, 1.5), 0.5), ((630.0, 320.0, 1.5), 3.0))  # (position m, emission s)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Heard:
    detection: wire.Detection
    received_at_ns: int


def tiny_city() -> tuple[dict[str, tuple[float, float, float]], list[Heard]]:
    poles = {f"pole-{r}{c}": (c * POLE_SPACING_M, r * POLE_SPACING_M, 6.0) for r in range(3) for c in range(4)}
    speed_m_per_s = speed_of_sound_m_per_s(15.0)
    heard = []
    for k, (source, emission_s) in enumerate(SOURCES):
        for pole, position in poles.items():
            distance_m = math.dist(source, position)
            if distance_m > HEARING_M:
                continue
            arrival_ns = round((emission_s + distance_m / speed_m_per_s) * NS_PER_S)
            detection = wire.Detection(
                detection_id=f"{pole}:shot-{k}",
                sensor_id=pole,
                label=wire.Label.GUNSHOT,
                score=0.9,
                arrival_time_ns=arrival_ns,
                arrival_uncertainty_ns=200_000,
                duration_ms=80.0,
                peak_dbfs=-12.0,
                position=wire.Position(x_m=position[0], y_m=position[1], z_m=position[2]),
                clock_status=wire.ClockStatus.SYNCED,
            )
            heard.append(Heard(detection=detection, received_at_ns=arrival_ns + round(DETECTION_DELAY_S * NS_PER_S)))
    return poles, heard


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_detection_is_acked_and_each_shot_is_one_incident_on_the_feed(backend: str, tmp_path: Path) -> None:
    poles, heard = tiny_city()
    shots = {
        k: {h.detection.detection_id for h in heard if h.detection.detection_id.endswith(f"shot-{k}")} for k in (0, 1)
    }
    assert [len(ids) for ids in shots.values()] == [7, 7]  # the scenario is the one described above
    started = time.monotonic()
    with database_url(backend, tmp_path) as url:
        report = replay_over_curve(heard, poles, store_url=url, workdir=tmp_path / "run", timeout_s=20.0)
    assert time.monotonic() - started < 60.0

    assert report.never_acked == []
    assert all(d.sent_ns is not None and d.acked_ns is not None and d.acked_ns >= d.sent_ns for d in report.detections)
    assert report.node.exit_code == 0  # SIGTERM ended the node cleanly
    latest: dict[str, wire.Incident] = {}
    for update in sorted(report.incident_updates, key=lambda u: u.received_ns):
        latest[update.incident.incident_id] = update.incident
    assert sorted(sorted(i.detection_ids) for i in latest.values()) == sorted(sorted(ids) for ids in shots.values())
    # Shifted back into the scenario's time base: origins near the emissions, updates after the first send.
    emissions_ns = sorted(round(emission_s * NS_PER_S) for _, emission_s in SOURCES)
    origins_ns = sorted(i.origin_time_ns for i in latest.values())
    assert all(abs(a - b) < NS_PER_S for a, b in zip(origins_ns, emissions_ns, strict=True)), origins_ns
    first_due_ns = min(h.received_at_ns for h in heard)
    assert all(first_due_ns < u.received_ns < first_due_ns + 30 * NS_PER_S for u in report.incident_updates)
    summary = report.summary()
    assert summary["acked"] == summary["stored_detections"] == summary["send_to_ack_ms"]["n"] == len(heard)
    assert summary["first_update_ms"]["n"] == 2 and summary["node_peak_rss_mib"] > 0


def test_a_detection_from_a_pole_not_in_the_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    poles, heard = tiny_city()
    del poles["pole-00"]
    with pytest.raises(ConfigError, match=r"pole-00"):
        replay_over_curve(heard, poles, store_url=f"sqlite:///{tmp_path / 'x.sqlite'}", workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argument", "value"), [("senders", 0), ("timeout_s", 0.0), ("heartbeat_interval_s", -1.0)])
def test_an_argument_out_of_range_is_named(argument: str, value: float, tmp_path: Path) -> None:
    poles, heard = tiny_city()
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    with pytest.raises(ConfigError, match=rf"{argument} = {value!r}; expected"):
        replay_over_curve(heard, poles, store_url=url, workdir=tmp_path / "run", **{argument: value})
    assert not (tmp_path / "run").exists()
