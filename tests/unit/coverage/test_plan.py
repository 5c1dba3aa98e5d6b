"""``sedcity coverage plan`` end to end on a small synthetic district, and its bad inputs."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sed.coverage.physics import DEFAULT_CLASSES, RangeModel
from sed.coverage.plan import capped_path_difference_m, class_range_m, load_district, main
from sed.coverage.plan_config import load_plan_config
from sed.coverage.synthetic import DistrictSpec, write_district
from sed.errors import ConfigError
from sed.models.detection_curve import CURVE_FORMAT, DetectionCurve

ROOT = Path(__file__).resolve().parents[3]
SMALL = DistrictSpec(size_m=(400.0, 300.0), n_existing=4, n_candidates=5, seed=3)


def _curve_file(folder: Path) -> Path:
    """A detection curve in the shipped format (the planner must not depend on which model)."""
    snr = [-20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
    doc = {
        "format": CURVE_FORMAT, "model_version": "test", "model_sha256": "0" * 64, "snr_db": snr,
        "classes": {
            "gunshot": {"p_detect": [0.0, 0.1, 0.5, 0.8, 0.9, 0.95]},
            "scream": {"p_detect": [0.0, 0.05, 0.3, 0.7, 0.9, 0.95]},
            "glass_break": {"p_detect": [0.0, 0.02, 0.2, 0.5, 0.7, 0.8]},
        },
    }  # fmt: skip
    path = folder / "curve.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("district")
    return write_district(folder, SMALL, cell_m=5.0, curve=_curve_file(folder))


@pytest.fixture(scope="module")
def planned(district: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("plan")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert (
            main([str(district), "--add", "2", "--out", str(out), "--no-progress"], prog="sedcity coverage plan") == 0
        )
    return out, printed.getvalue()


def test_plan_writes_every_output(planned: tuple[Path, str]) -> None:
    out, printed = planned
    for name in ("coverage.geojson", "cells.csv", "summary.csv", "chosen_sites.csv", "map_day.png", "map_night.png",
                 "plan.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert (out / "map_night.png").stat().st_size > 20_000
    assert printed.count("pick: C") == 2 and "m² located" in printed


def test_geojson_is_wgs84_bands_per_class_and_period(planned: tuple[Path, str], district: Path) -> None:
    doc = json.loads((planned[0] / "coverage.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and doc["sed_coverage"]["crs"] == "EPSG:4326"
    features = doc["features"]
    assert {f["properties"]["label"] for f in features} <= set(DEFAULT_CLASSES)
    assert {f["properties"]["period"] for f in features} == {"day", "night"}
    assert {f["properties"]["layer"] for f in features} == {"heard", "located"}
    coords = np.array([xy for f in features for xy in _points(f["geometry"])])
    area = json.loads((district.parent / "area.geojson").read_text())["features"][0]["geometry"]["coordinates"][0]
    lon, lat = np.array(area)[:, 0], np.array(area)[:, 1]
    assert np.all((coords[:, 0] >= lon.min() - 1e-6) & (coords[:, 0] <= lon.max() + 1e-6))
    assert np.all((coords[:, 1] >= lat.min() - 1e-6) & (coords[:, 1] <= lat.max() + 1e-6))
    for f in features:
        p = f["properties"]
        assert 0.0 <= p["band_min"] < p["band_max"] <= 1.0 and p["area_m2"] > 0
        value = p["mean_p_located"] if p["layer"] == "located" else p["mean_p_heard"]
        assert p["band_min"] - 1e-4 <= value <= p["band_max"] + 1e-4


def _points(geometry: dict) -> list[list[float]]:
    rings = (
        geometry["coordinates"] if geometry["type"] == "Polygon" else [r for p in geometry["coordinates"] for r in p]
    )
    return [xy for ring in rings for xy in ring]


def test_summary_and_cells_agree_and_located_never_exceeds_heard(planned: tuple[Path, str]) -> None:
    out = planned[0]
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["region"] for r in rows} == {"area", "old town", "station"}
    assert len(rows) == 3 * 2 * 3  # classes x periods x regions
    for r in rows:
        assert 0.0 <= float(r["share_located"]) <= float(r["share_heard"]) <= 1.0
    cells = np.genfromtxt(out / "cells.csv", delimiter=",", names=True)
    area = next(r for r in rows if r["label"] == "gunshot" and r["period"] == "night" and r["region"] == "area")
    assert float(area["share_heard"]) == pytest.approx(cells["gunshot_night_p_heard"].mean(), abs=1e-3)
    assert float(area["share_located"]) == pytest.approx(cells["gunshot_night_p_located"].mean(), abs=1e-3)


def test_chosen_sites_are_candidates_with_their_gains(planned: tuple[Path, str], district: Path) -> None:
    chosen = list(csv.DictReader((planned[0] / "chosen_sites.csv").open()))
    sites = {r["id"]: r for r in csv.DictReader((district.parent / "sites.csv").open())}
    assert [r["rank"] for r in chosen] == ["1", "2"]
    assert all(sites[r["id"]]["kind"] == "candidate" for r in chosen)
    assert float(chosen[1]["located_m2"]) == pytest.approx(float(chosen[0]["located_m2"]) + float(chosen[1]["gain_m2"]),
                                                          abs=1.0)  # fmt: skip
    for row in chosen:  # WGS84 in, UTM inside, WGS84 out: the same place to 1e-7 degrees (1 cm)
        assert float(row["lon"]) == pytest.approx(float(sites[row["id"]]["lon"]), abs=2e-7)
        assert float(row["lat"]) == pytest.approx(float(sites[row["id"]]["lat"]), abs=2e-7)
    report = json.loads((planned[0] / "plan.json").read_text())
    assert [p["id"] for p in report["picks"]] == [r["id"] for r in chosen] and report["git_commit"]


def test_more_sensors_never_reduce_coverage(district: Path, tmp_path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        main([str(district), "--out", str(tmp_path / "base"), "--no-maps", "--no-progress"], prog="p")
        main([str(district), "--add", "3", "--out", str(tmp_path / "more"), "--no-maps", "--no-progress"], prog="p")
    base = np.genfromtxt(tmp_path / "base" / "cells.csv", delimiter=",", names=True)
    more = np.genfromtxt(tmp_path / "more" / "cells.csv", delimiter=",", names=True)
    for name in base.dtype.names:
        if name.endswith(("p_heard", "expected_sensors")):
            assert np.all(more[name] >= base[name] - 1e-4), name


def test_unknown_key_in_the_plan_file_is_named(district: Path) -> None:
    bad = district.parent / "typo.toml"
    bad.write_text(district.read_text().replace("[grid]\n", "[grid]\ncell_size = 5\n"))
    with pytest.raises(ConfigError, match=r"typo\.toml: grid\.cell_size: unknown key"):
        load_plan_config(bad)


def test_missing_input_file_and_unknown_class_are_named(district: Path) -> None:
    text = district.read_text()
    missing = district.parent / "missing.toml"
    missing.write_text(text.replace('area = "area.geojson"', 'area = "nowhere.geojson"'))
    with pytest.raises(ConfigError, match=r"missing\.toml: inputs\.area = '.*nowhere\.geojson'; no such file"):
        load_plan_config(missing)
    unknown = district.parent / "unknown.toml"
    unknown.write_text(text.replace("[plan]\n", '[plan]\nclasses = ["gunshot", "siren"]\n'))
    with pytest.raises(ConfigError, match=r"unknown\.toml: plan\.classes has 'siren'"):
        load_plan_config(unknown)


def test_a_site_outside_the_area_stops_the_plan_with_one_line(district: Path, tmp_path: Path) -> None:
    folder = district.parent
    sites = (folder / "sites.csv").read_text().splitlines()
    (folder / "far_sites.csv").write_text("\n".join([*sites, "FAR,candidate,6,49.80,13.36"]) + "\n")
    plan = folder / "far.toml"
    plan.write_text(district.read_text().replace('sites = "sites.csv"', 'sites = "far_sites.csv"'))
    result = subprocess.run([sys.executable, "-m", "sed", "coverage", "plan", str(plan), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"far_sites.csv: line {len(sites) + 1}: site 'FAR' lies" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_explains_every_input_with_an_example() -> None:
    result = subprocess.run([sys.executable, "-m", "sed", "coverage", "plan", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert result.returncode == 0
    keys = ("sites =", "footprints =", "height_field", "default_height_m", "area =", "zones =", "noise_zones", "day_db",
            "night_db", "cell_m", "error_bound_m", "--add", "example: sedcity coverage plan")  # fmt: skip
    for key in keys:
        assert key in result.stdout, key


def test_class_range_is_where_the_unscreened_detection_probability_fades() -> None:
    curve = DetectionCurve(model_version="t", snr_db=np.array([-10.0, 0.0, 10.0]),
                           p_detect={"scream": np.array([0.0, 0.5, 1.0])})  # fmt: skip
    scream = DEFAULT_CLASSES["scream"]
    range_m = class_range_m(acoustics=scream, model=RangeModel(), curve=curve, noise_db=40.0, min_p_detect=1e-3,
                            max_range_m=5000.0, step_m=5.0)  # fmt: skip
    # P >= 1e-3 needs SNR > -10 dB: 100 dB - 20 log10(r) - (alpha + excess) r > 30 dB
    assert 500.0 < range_m < 3000.0
    assert class_range_m(acoustics=scream, model=RangeModel(), curve=curve, noise_db=40.0, min_p_detect=1e-3,
                         max_range_m=200.0, step_m=5.0) == pytest.approx(205.0)  # fmt: skip


def test_capped_path_difference_is_where_screening_reaches_its_cap() -> None:
    model = RangeModel(barrier_cap_db=20.0)
    settled = capped_path_difference_m(frequency_hz=1000.0, model=model)
    # ISO 9613-2: 10 log10(3 + 20 z / lambda) = 20 dB at z = 97 lambda / 20 = 1.66 m at 1 kHz
    assert settled == pytest.approx(97 * 0.343 / 20, rel=0.01)
    assert capped_path_difference_m(frequency_hz=4000.0, model=model) < settled


def test_speed_benchmark_smoke_runs(tmp_path: Path) -> None:
    out = tmp_path / "coverage_speed.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/coverage_speed.py", "--smoke", "--out", str(out),
         "--curve", str(_curve_file(tmp_path))],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["git_commit"] and report["plan_s"] > 0 and report["screening_speedup"] > 1.0
    assert "vs the per-sample loop" in result.stdout


def test_noise_zones_set_the_level_of_their_cells(district: Path) -> None:
    plan = load_district(load_plan_config(district))
    day, night = plan.noise_db["day"], plan.noise_db["night"]
    road = day > SMALL.noise_day_db
    assert set(np.unique(day)) == {SMALL.noise_day_db, SMALL.noise_day_db + 10.0}
    assert 0.05 < road.mean() < 0.6  # an 80 m wide road across a 300 m district
    assert np.all(night[road] == SMALL.noise_night_db + 8.0) and np.all(night[~road] == SMALL.noise_night_db)
    assert plan.crs.to_epsg() == 32633  # the UTM zone of Plzeň


def test_a_priority_zone_outside_the_area_is_named(district: Path) -> None:
    folder = district.parent
    zones = json.loads((folder / "zones.geojson").read_text())
    ring = zones["features"][1]["geometry"]["coordinates"][0]
    zones["features"][1]["geometry"]["coordinates"][0] = [[lon + 0.05, lat] for lon, lat in ring]  # 3.6 km east
    (folder / "far_zones.geojson").write_text(json.dumps(zones))
    plan = folder / "far_zones.toml"
    plan.write_text(district.read_text().replace('zones = "zones.geojson"', 'zones = "far_zones.geojson"'))
    with pytest.raises(ConfigError, match=r"far_zones\.geojson: feature 2: zone 'station' holds no outdoor cell"):
        load_district(load_plan_config(plan))
