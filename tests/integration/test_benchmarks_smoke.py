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


def test_wire_fuzz_benchmark_smoke_neither_crashes_nor_hangs_the_node(tmp_path: Path) -> None:
    out_file = tmp_path / "fuzz_wire.json"
    out = _run(
        sys.executable, "benchmarks/fuzz_wire.py", *("--frames", "500", "--probe-every", "100", "--out", str(out_file))
    )
    report = json.loads(out_file.read_text())
    assert report["git_commit"] and "0 crashes, 0 hangs" in out
    assert report["frames"]["sent"] == 500 and report["crashes"] == report["hangs"] == 0
    assert report["probes"]["n_acked"] >= 6 and report["valid_durable_messages"]["unacked"] == 0
    assert report["replies"]["rejects"] > 0 and report["node_rss_mb"]["end"] > 0


def test_soak_benchmark_smoke_loses_nothing(tmp_path: Path) -> None:
    out_file = tmp_path / "soak.json"
    _run(
        sys.executable,
        "benchmarks/soak.py",
        *("--duration-s", "20", "--poles", "5", "--events-per-min", "30", "--sample-interval-s", "1"),
        *("--out", str(out_file)),
    )
    report = json.loads(out_file.read_text())
    counts = report["counts"]
    assert report["git_commit"] and report["nothing_lost"] and counts["detections_sent"] > 0
    assert counts["detections_stored"] == counts["clips_stored"] == counts["detections_sent"]
    assert counts["outbox_depth_end"] == 0 and report["server_exit_code"] == 0
    assert report["memory_cpu"]["rss_after_warmup_mib"] > 0 and report["send_to_ack_ms"]["detection"]["p99"] > 0
    assert out_file.with_suffix(".png").stat().st_size > 0


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
        "--association",
        "neighbourhood",  # the likelihood one takes a minute per mode; tests/unit/bench covers it
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


@pytest.mark.data
def test_cross_source_benchmark_smoke_checks_the_targets(tmp_path: Path) -> None:
    out_file = tmp_path / "cross_source.json"
    out = _run(
        sys.executable, "benchmarks/cross_source.py", "--smoke", "--cache-dir", str(tmp_path), "--out", str(out_file)
    )
    report = json.loads(out_file.read_text())
    assert report["git_commit"] and report["families_held_out"] == ["assaf", "tuantje"]
    assert "recall_by_family" in report["per_class"]["glass_break"] and "yamnet" in report["per_class"]["glass_break"]
    assert set(report["targets"]) == {"gunshot", "scream", "glass_break", "false_alarms"}
    assert out_file.with_suffix(".png").stat().st_size > 10_000
    assert "YAMNet F1" in out


@pytest.mark.data
def test_detector_cost_benchmark_smoke_reports_the_ratio_to_yamnet(tmp_path: Path) -> None:
    out_file = tmp_path / "detector_cost.json"
    out = _run(sys.executable, "benchmarks/detector_cost.py", "--smoke", "--out", str(out_file))
    report = json.loads(out_file.read_text())
    assert report["git_commit"] and report["audio"]["seconds"] == pytest.approx(20.0)
    assert report["yamnet_over_sed"] > 0 and 0.0 <= report["wake_rate"] <= 1.0
    assert "YAMNet / sed" in out


@pytest.mark.data
@pytest.mark.yamnet
def test_scaling_benchmark_smoke_runs_one_and_two_workers_with_identical_reports(tmp_path: Path) -> None:
    out_file = tmp_path / "bench_scaling.json"
    out = _run(
        sys.executable, "benchmarks/bench_scaling.py", "--smoke", "--cache-dir", str(tmp_path), "--out", str(out_file)
    )
    report = json.loads(out_file.read_text())
    assert report["git_commit"] and len(report["corpora"]) == 2
    for corpus in report["corpora"].values():
        assert corpus["identical_reports"] and corpus["speedup"] > 0
        assert [r["runs"][0]["run_by"]["engine"] for r in corpus["runs"]] == ["sequential", "dask-local"]
        assert all(r["tasks_s_median"] > 0 for r in corpus["runs"]) and corpus["speedup_tasks"] > 0
        assert all(r["peak_rss_mib_per_process"] > 50 for r in corpus["runs"])
    assert out_file.with_suffix(".png").stat().st_size > 10_000
    assert "(baseline: 1 worker, same run;" in out


def test_fusion_load_benchmark_smoke_scores_the_builder_against_a_baseline_build(tmp_path: Path) -> None:
    out_file = tmp_path / "fusion_load.json"
    out = _run(sys.executable, "benchmarks/fusion_load.py", "--smoke", "--baseline-ref", "HEAD", "--out", str(out_file))
    report = json.loads(out_file.read_text())
    (cell,) = report["cells"]
    figures = cell["in_process"]
    assert report["git_commit"] and cell["poles"] == 50 and figures["sources"] > 0
    assert figures["detections_fed"] == figures["detections"] > figures["detections_spurious"] > 0
    assert figures["cpu_us_per_detection"] > 0 and report["restart_s"]["seconds"] > 0
    assert report["baseline"]["git_commit"] and len(report["baseline"]["cells"]) == 1
    assert "Targets (issue 10)" in out and "now/base" in out
    assert out_file.with_suffix(".png").stat().st_size > 10_000
