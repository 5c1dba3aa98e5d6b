"""The simulated-city benchmark runs end to end on the shipped model and reports consistent counts.

Two simulated minutes of three poles: a smoke run (no timing or accuracy targets), output
in a temporary folder. Needs ``../shared/data`` (the ``data`` mark skips it otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLES, HOURS = 3, 0.035  # 126 s: one scripted event
PRIORITIES = ("alert", "unconfirmed", "suppressed")

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("city") / "city.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/city.py", "--poles", str(POLES), "--hours", str(HOURS), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "false incidents per 100 sensor-hours" in result.stdout
    assert out.with_suffix(".png").stat().st_size > 0
    return json.loads(out.read_text())


def test_city_report_has_provenance_and_both_runs(report: dict[str, Any]) -> None:
    assert report["git_commit"] and report["command"].startswith("python benchmarks/city.py")
    assert report["benchmark"] == "city" and report["model"]["version"]
    assert report["sensor_hours"] == pytest.approx(POLES * HOURS, abs=1e-3)
    assert len(report["city"]["poles"]) == POLES and report["city"]["background_sounds"] > POLES
    rates = report["false_alerts_per_100_sensor_hours"]
    assert set(rates) >= {"policy_off", "policy_on", "ratio_on_to_off", "goal"}
    assert report["cpu"]["audio_s"] == pytest.approx(POLES * HOURS * 3600)
    assert report["cpu"]["realtime_factor_pipeline"] > 0 and "matches a scripted event" in report["matching_rule"]
    for run in ("policy_off", "policy_on"):
        assert {"noisy_poles_flagged", "noisy_poles_at_end", "transitions"} <= set(report[run])


def test_city_renders_a_scripted_event_from_a_real_clip(report: dict[str, Any]) -> None:
    for run in ("policy_off", "policy_on"):
        (event,) = report[run]["scripted_events"]
        assert event["clip"].startswith(f"{event['label']}/") and event["clip"].endswith(".flac")
        assert event["poles_in_range"] >= 1 and event["nearest_pole_peak_dbfs"] > -60
        assert 0 < event["emission_time_s"] < HOURS * 3600
        assert event["alerted"] == (event["delay_to_alert_s"] is not None)
        if event["alerted"]:
            assert event["best_priority"] == "alert" and event["delay_to_alert_s"] >= 0


def test_city_counts_are_consistent(report: dict[str, Any]) -> None:
    off, on = report["policy_off"], report["policy_on"]
    # The same detections through the same builder: the policy changes priorities, not incidents.
    assert off["incidents"] == on["incidents"]
    assert off["by_priority"] == {"alert": off["incidents"], "unconfirmed": 0, "suppressed": 0}
    for run in (off, on):
        assert sum(run["by_priority"].values()) == run["incidents"]
        assert sum(sum(counts.values()) for counts in run["by_label"].values()) == run["incidents"]
        for priority in PRIORITIES:
            assert 0 <= run["false_by_priority"][priority] <= run["by_priority"][priority]
        n_false_alerts = run["false_by_priority"]["alert"]
        assert len(run["false_alerts"]) == n_false_alerts
        assert sum(run["false_alerts_by_cause"].values()) == n_false_alerts
        assert sum(run["false_alerts_by_label"].values()) == n_false_alerts
        assert run["false_alerts_per_100_sensor_hours"] == pytest.approx(
            100 * n_false_alerts / report["sensor_hours"], rel=1e-3
        )
        assert run["all_scripted_alerted"] == all(e["alerted"] for e in run["scripted_events"])
    assert on["false_by_priority"]["alert"] <= off["false_by_priority"]["alert"]
    rates = report["false_alerts_per_100_sensor_hours"]
    if rates["policy_off"] > 0:
        assert rates["ratio_on_to_off"] == pytest.approx(rates["policy_on"] / rates["policy_off"], rel=1e-3)
