"""Every benchmark runs in a short smoke form, so none of them goes stale unnoticed.

Outputs go to a temporary folder: the committed results under benchmarks/results/ are
only ever rewritten by the full runs listed in the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sed.paths import shared_data_dir

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(*args: str, timeout_s: float = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_frontend_benchmark_reports_its_ratio_to_librosa() -> None:
    out = _run(sys.executable, "benchmarks/bench_frontend.py", "--smoke")
    assert "librosa" in out


def test_sensor_benchmark_quick(tmp_path: Path) -> None:
    out_file = tmp_path / "sensor.json"
    _run(sys.executable, "benchmarks/sensor.py", "--quick", "--out", str(out_file))
    assert json.loads(out_file.read_text())["git_commit"]


def test_api_latency_benchmark_smoke(tmp_path: Path) -> None:
    out_file = tmp_path / "api_latency.json"
    _run(sys.executable, "benchmarks/api_latency.py", "--smoke", "--out", str(out_file))
    assert json.loads(out_file.read_text())["git_commit"]


@pytest.mark.data
def test_bench_localize_on_one_firing_position(tmp_path: Path) -> None:
    out_file = tmp_path / "localize.json"
    _run(
        sys.executable,
        "-m",
        "sed.cli",
        "bench",
        "localize",
        str(shared_data_dir() / "pittsburgh"),
        "--firing-positions",
        "FP3",
        "--out",
        str(out_file),
        "--no-progress",
    )
    assert json.loads(out_file.read_text())["meta"]["git_commit"]
    assert list(tmp_path.glob("*.png"))


@pytest.mark.data
@pytest.mark.yamnet
def test_bench_detect_with_the_yamnet_baseline(tmp_path: Path) -> None:
    out_file = tmp_path / "detect.json"
    _run(
        sys.executable,
        "-m",
        "sed.cli",
        "bench",
        "detect",
        str(shared_data_dir() / "events" / "manifest.csv"),
        "--split",
        "dev",
        "--limit",
        "8",
        "--baseline",
        "yamnet",
        "--out",
        str(out_file),
    )
    report = json.loads(out_file.read_text())
    assert report["n_files"] == 8
    assert "yamnet" in json.dumps(report["per_class"])
