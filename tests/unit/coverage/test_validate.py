"""``sedcity coverage validate``: scores, fit, heard/not-heard rows, bad input, and the real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sed.bench.pittsburgh import LiveFireTest, Pulse
from sed.coverage.validate import (
    PARAMETER_NAMES,
    Observations,
    fit,
    main,
    observations,
    p_heard,
    reliability,
    roc_auc,
)
from sed.errors import ConfigError
from sed.paths import shared_data_dir
from sed.units import speed_of_sound_m_per_s

T0_NS = 1_545_180_000_000_000_000


def test_roc_auc_equals_pairwise_count_with_ties_as_half() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=60).astype(float)
    positive = rng.uniform(size=60) < 0.4
    pairs = [(a, b) for a in scores[positive] for b in scores[~positive]]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert roc_auc(scores=scores, positive=positive) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_of_one_class_is_nan() -> None:
    assert math.isnan(roc_auc(scores=np.arange(3.0), positive=np.ones(3, dtype=bool)))


def test_reliability_bins_hold_every_row_and_their_own_probabilities() -> None:
    p = np.array([0.05, 0.07, 0.5, 0.55, 0.95, 1.0])
    outcome = np.array([0, 0, 1, 0, 1, 1], dtype=bool)
    bins = reliability(p=p, outcome=outcome)
    assert sum(b["n"] for b in bins) == p.size
    assert bins[0] == {"p_mean": pytest.approx(0.06), "observed": 0.0, "n": 2}
    assert bins[-1] == {"p_mean": pytest.approx(0.975), "observed": 1.0, "n": 2}


def _synthetic(params: np.ndarray, n: int, rng: np.random.Generator) -> Observations:
    obs = Observations(
        firing_position=np.array(["FP1"] * n),
        sensor=np.array([f"s{i % 30}" for i in range(n)]),
        distance_m=rng.uniform(50.0, 2500.0, n),
        elevation_deg=rng.uniform(-10.0, 10.0, n),
        temperature_c=rng.choice([0.0, 10.0], n),
        heard=np.zeros(n, dtype=bool),
    )
    heard = rng.uniform(size=n) < p_heard(params, obs)
    return Observations(**{**obs.__dict__, "heard": heard})


def _log_loss(params: np.ndarray, obs: Observations) -> float:
    p = np.clip(p_heard(params, obs), 1e-12, 1.0 - 1e-12)
    return -float(np.mean(np.where(obs.heard, np.log(p), np.log1p(-p))))


def test_fit_finds_the_likelihood_optimum_and_the_true_probabilities() -> None:
    # excess, threshold and slope trade off against each other (the likelihood is flat along
    # that ridge), so check what the fit promises: at least the true parameters' likelihood,
    # and the probabilities that made the data
    truth = np.array([8.0, 55.0, 3.0, 0.8])
    obs = _synthetic(truth, 20_000, np.random.default_rng(2))
    got = fit(obs)
    assert _log_loss(got, obs) <= _log_loss(truth, obs)
    assert np.mean(np.abs(p_heard(got, obs) - p_heard(truth, obs))) < 0.02
    # the elevation term's weight in the logit is well determined: gain / slope
    gain_per_slope = got[PARAMETER_NAMES.index("elevation_gain_db_per_deg")] / got[PARAMETER_NAMES.index("slope_db")]
    assert gain_per_slope == pytest.approx(0.8 / 3.0, abs=0.03)


def test_fit_without_elevation_holds_its_gain_at_zero() -> None:
    got = fit(_synthetic(np.array([8.0, 55.0, 3.0, 0.0]), 5_000, np.random.default_rng(3)), elevation=False)
    assert got[PARAMETER_NAMES.index("elevation_gain_db_per_deg")] == 0.0


def _pulse(uuid: str, serial: str, xyz: tuple[float, float, float], t_ns: float) -> Pulse:
    return Pulse(uuid=uuid, serial=serial, position_m=xyz, arrival_time_ns=round(t_ns), snr_db=20.0)


def test_observations_mark_a_sensor_heard_only_within_the_window() -> None:
    temperature_c = 5.0
    c = speed_of_sound_m_per_s(temperature_c)
    survey = (0.0, 0.0, 0.0)
    sites = {
        "a": (300.0, 0.0, 10.0),
        "b": (0.0, 400.0, -20.0),
        "c": (-350.0, 0.0, 0.0),
        "d": (0.0, -300.0, 5.0),
        "late": (500.0, 500.0, 30.0),
        "far": (4000.0, 0.0, 0.0),
    }

    def arrival(serial: str) -> float:
        return T0_NS + math.dist(sites[serial], survey) / c * 1e9

    tuple_pulses = [_pulse(f"u{s}", s, sites[s], arrival(s)) for s in ("a", "b", "c", "d")]
    others = [
        _pulse("ulate", "late", sites["late"], arrival("late") + 300e6),  # an echo, not the shot
        _pulse("ufar", "far", sites["far"], arrival("far")),  # beyond 3 km: not a row
    ]
    test = LiveFireTest(
        test_id="test_001", firing_position="FP1", firearm="9mm", num_rounds=1, survey_m=survey,
        temperature_c=temperature_c, pulses=(*tuple_pulses, *others),
        shot_pulse_uuids=(tuple(p.uuid for p in tuple_pulses),), recordings=(),
    )  # fmt: skip
    obs, skipped = observations([test])
    assert skipped == 0
    heard = dict(zip(obs.sensor.tolist(), obs.heard.tolist(), strict=True))
    assert heard == {"a": True, "b": True, "c": True, "d": True, "late": False}
    row = obs.sensor.tolist().index("b")
    assert obs.distance_m[row] == pytest.approx(math.hypot(400.0, 20.0))
    assert obs.elevation_deg[row] == pytest.approx(-math.degrees(math.atan2(20.0, 400.0)))


def test_missing_folder_is_one_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere: no such folder"):
        main([str(tmp_path / "nowhere")], prog="sedcity coverage validate")


def test_folder_without_tests_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no FP\\*/test_\\* folders"):
        main([str(tmp_path)], prog="sedcity coverage validate")


def test_unreadable_firing_positions_are_named(tmp_path: Path) -> None:
    (tmp_path / "FP1" / "test_001").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no readable tests for FP1, FP2, FP3, FP4, FP5"):
        main([str(tmp_path)], prog="sedcity coverage validate")


@pytest.mark.data
def test_validate_on_the_pittsburgh_data_writes_a_finite_report(tmp_path: Path) -> None:
    data = shared_data_dir()
    assert data is not None
    out = tmp_path / "coverage_validate.json"
    assert main([str(data / "pittsburgh"), "--out", str(out)], prog="sedcity coverage validate") == 0
    report = json.loads(out.read_text())
    assert report["meta"]["git_commit"] and report["meta"]["command"].startswith("sedcity coverage validate")
    for fp in ("FP1", "FP2", "FP3", "FP4", "FP5"):
        held = report["heard"]["leave_one_out"][fp]
        assert set(held["parameters"]) == set(PARAMETER_NAMES)
        assert 0.5 < held["roc_auc"] <= 1.0 and 0.0 <= held["brier"] < 0.25
        assert sum(b["n"] for b in held["reliability"]) == held["n"] == report["observations"][fp]
        error = report["error"][fp]
        for key in ("bound_95_m", "with_survey_95_m", "measured_error_95_m", "timing_sigma_s"):
            assert math.isfinite(error[key]) and error[key] > 0
        assert set(report["targets"][fp]) == {"roc_auc", "brier", "error_within_factor_2"}
    assert all(math.isfinite(v) for v in report["heard"]["fit_on_all"]["parameters"].values())
    assert (tmp_path / "coverage_validate_reliability.png").stat().st_size > 0
    assert (tmp_path / "coverage_validate_error.png").stat().st_size > 0
