"""``sed demo`` end to end in a shortened form: real sensor processes, ZeroMQ, fusion, API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run_demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "sed.cli", "demo", "--workdir", str(tmp_path / "demo"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


@pytest.mark.data
def test_short_demo_alerts_every_scripted_event_with_the_right_class_and_place(tmp_path: Path) -> None:
    summary, report = _run_demo(tmp_path, "--duration", "16")
    assert summary["scripted"] == 4
    assert summary["alerted"] == 4, report
    assert summary["classes_correct"] == 4, report
    assert summary["median_error_m"] is not None and summary["median_error_m"] < 10.0, report
    assert summary["max_latency_s"] is not None and summary["max_latency_s"] < 10.0, report


def test_demo_runs_on_labelled_synthetic_sounds_without_shared_data(tmp_path: Path) -> None:
    summary, report = _run_demo(tmp_path, "--duration", "12", env={"SED_SHARED_DATA": str(tmp_path / "absent")})
    assert summary["scripted"] == 4
    assert "sound: synthetic gunshot" in report
    assert set(summary) == {"scripted", "alerted", "classes_correct", "median_error_m", "max_latency_s"}
