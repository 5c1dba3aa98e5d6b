"""``sedcity coverage validate``: the coverage model against ShotSpotter's Pittsburgh live-fire test.

Two checks, per firing position FP1-FP5 (``docs/coverage-physics.md`` states the physics):

* **Which sensors heard each shot.** Sensor set: every sensor that reported any pulse in any
  of the 18 tests at that firing position (sensors that never reported there are absent from
  the data, so the set is biased toward sensors that can hear; the whole test's set would be
  more so). For every fired round with a reference emission time (ShotSpotter's pulse
  tuple solved by our solver) and every sensor within 3 km, *heard* = the sensor reported a
  pulse from -50 ms to +100 ms of the direct arrival time (the late side allows paths bent
  over buildings). Predicted: ``P(heard) = logistic((L - threshold) / slope)`` with ``L`` the
  received 1-s Leq of :func:`~sed.coverage.physics.received_level_db` (gunshot class, 3-D
  distance, the test's temperature, 70 % RH) plus ``elevation_gain_db_per_deg`` times the
  path's elevation angle at the sensor: a stand-in for the buildings and hills on the path,
  which the data do not give (a path rising to a rooftop on a hill clears them). Four free
  parameters, fitted by maximum likelihood: leave-one-firing-position-out (fit on four,
  scored on the fifth: the headline) and on all five. A three-parameter variant without the
  elevation term is reported beside it.
* **Position error.** Measured: the 95th percentile of the 2-D error of ``sed bench
  localize`` (pulses mode, its default settings) per firing position, about the survey point
  and about the shots' own centroid. Predicted: :func:`~sed.coverage.locate_error.error_95_m`
  at the survey point with the real sensor geometry, each sensor weighted by its held-out
  P(heard), timing sigma from the residuals of our solver on the *other* firing positions'
  tuples; and that bound combined with the survey point's own error (smartphone GPS,
  2.5 m taken as a 68 % radius: sigma = 1.65 m per axis).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from sed.bench.localize_score import reference_shots
from sed.bench.pittsburgh import DatasetError, LiveFireTest, load_tests
from sed.bench.report import provenance
from sed.coverage.physics import DEFAULT_CLASSES, RangeModel, received_level_db
from sed.coverage.validate_error import (
    SURVEY_ACCURACY_68_M,
    measured_errors,
    predicted_errors,
    sensor_sites,
    timing_sigma_s,
)
from sed.errors import ConfigError
from sed.units import speed_of_sound_m_per_s

FIRING_POSITIONS = ("FP1", "FP2", "FP3", "FP4", "FP5")
MAX_RANGE_M = 3000.0
#: A pulse belongs to a shot if it arrives this long before/after the direct arrival, ns.
EARLY_WINDOW_NS = 50_000_000
LATE_WINDOW_NS = 100_000_000
RELATIVE_HUMIDITY_PCT = 70.0
N_RELIABILITY_BINS = 10
TARGET_AUC = 0.85
TARGET_BRIER = 0.15
TARGET_ERROR_FACTOR = 2.0
PARAMETER_NAMES = ("excess_db_per_km", "threshold_db", "slope_db", "elevation_gain_db_per_deg")
#: Bounds of the fit: excess attenuation >= 0, a detector slope of 0.3-30 dB, +-3 dB/degree.
_BOUNDS = ((0.0, 60.0), (-20.0, 120.0), (0.3, 30.0), (-3.0, 3.0))
_START = (5.0, 50.0, 3.0, 0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observations:
    """One row per (fired round, sensor within range): shape (n,) each."""

    firing_position: np.ndarray
    sensor: np.ndarray
    distance_m: np.ndarray
    elevation_deg: np.ndarray
    temperature_c: np.ndarray
    heard: np.ndarray

    def select(self, mask: np.ndarray) -> Observations:
        return Observations(**{f.name: getattr(self, f.name)[mask] for f in dataclasses.fields(self)})


def observations(tests: list[LiveFireTest]) -> tuple[Observations, int]:
    """Heard / not heard per fired round and sensor within 3 km, and the rounds skipped
    (no reference emission time)."""
    rows: list[tuple[str, str, float, float, float, bool]] = []
    skipped = 0
    by_fp: dict[str, list[LiveFireTest]] = {}
    for test in tests:
        by_fp.setdefault(test.firing_position, []).append(test)
    for fp, fp_tests in by_fp.items():
        sites = sensor_sites(fp_tests)
        for test in fp_tests:
            c = speed_of_sound_m_per_s(test.temperature_c)
            pulses_by_sensor: dict[str, list[int]] = {}
            for pulse in test.pulses:
                pulses_by_sensor.setdefault(pulse.serial, []).append(pulse.arrival_time_ns)
            for shot in reference_shots(test):
                if shot.origin_time_ns is None:
                    skipped += 1
                    continue
                for serial, xyz in sites.items():
                    delta = np.subtract(xyz, test.survey_m)
                    distance_m = float(np.linalg.norm(delta))
                    if distance_m > MAX_RANGE_M:
                        continue
                    expected_ns = shot.origin_time_ns + distance_m / c * 1e9
                    heard = any(
                        -EARLY_WINDOW_NS <= t - expected_ns <= LATE_WINDOW_NS for t in pulses_by_sensor.get(serial, ())
                    )
                    elevation_deg = float(np.degrees(np.arctan2(delta[2], np.hypot(delta[0], delta[1]))))
                    rows.append((fp, serial, distance_m, elevation_deg, test.temperature_c, heard))
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    obs = Observations(
        firing_position=np.array(columns[0], dtype=str),
        sensor=np.array(columns[1], dtype=str),
        distance_m=np.array(columns[2], dtype=np.float64),
        elevation_deg=np.array(columns[3], dtype=np.float64),
        temperature_c=np.array(columns[4], dtype=np.float64),
        heard=np.array(columns[5], dtype=bool),
    )
    return obs, skipped


def p_heard(params: np.ndarray, obs: Observations) -> np.ndarray:
    """Predicted P(heard) per row for parameters in :data:`PARAMETER_NAMES` order."""
    excess_db_per_km, threshold_db, slope_db, elevation_gain_db_per_deg = params
    gunshot = DEFAULT_CLASSES["gunshot"]
    level_db = np.empty_like(obs.distance_m)
    for temperature_c in np.unique(obs.temperature_c):
        rows = obs.temperature_c == temperature_c
        model = RangeModel(
            excess_db_per_km=float(excess_db_per_km),
            temperature_c=float(temperature_c),
            relative_humidity_pct=RELATIVE_HUMIDITY_PCT,
        )
        level_db[rows] = received_level_db(
            source_level_db=gunshot.source_level_db,
            distance_m=obs.distance_m[rows],
            frequency_hz=gunshot.frequency_hz,
            path_difference_m=None,
            model=model,
        )
    margin_db = level_db + elevation_gain_db_per_deg * obs.elevation_deg - threshold_db
    return 1.0 / (1.0 + np.exp(-margin_db / slope_db))


def fit(obs: Observations, *, elevation: bool = True) -> np.ndarray:
    """Maximum-likelihood parameters (:data:`PARAMETER_NAMES` order); without ``elevation``
    the elevation gain is held at 0."""
    bounds = list(_BOUNDS) if elevation else [*_BOUNDS[:3], (0.0, 0.0)]

    def log_loss(params: np.ndarray) -> float:
        p = np.clip(p_heard(params, obs), 1e-12, 1.0 - 1e-12)
        return -float(np.mean(np.where(obs.heard, np.log(p), np.log1p(-p))))

    best = None
    for excess_start in (1.0, 10.0, 30.0):
        start = np.array([excess_start, *_START[1:]])
        result = optimize.minimize(log_loss, start, method="L-BFGS-B", bounds=bounds)
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    return best.x


def roc_auc(*, scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN with one class only."""
    n_pos = int(np.sum(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((np.sum(ranks[positive]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(*, p: np.ndarray, outcome: np.ndarray) -> list[dict[str, float]]:
    """Per decile of predicted probability: mean predicted, observed share, count."""
    edges = np.linspace(0.0, 1.0, N_RELIABILITY_BINS + 1)
    index = np.clip(np.digitize(p, edges) - 1, 0, N_RELIABILITY_BINS - 1)
    return [
        {
            "p_mean": float(p[index == b].mean()),
            "observed": float(outcome[index == b].mean()),
            "n": int(np.sum(index == b)),
        }
        for b in range(N_RELIABILITY_BINS)
        if np.any(index == b)
    ]


def scores(*, p: np.ndarray, outcome: np.ndarray) -> dict[str, object]:
    return {
        "n": int(p.size),
        "heard_share": float(outcome.mean()),
        "roc_auc": roc_auc(scores=p, positive=outcome),
        "brier": float(np.mean((p - outcome) ** 2)),
        "reliability": reliability(p=p, outcome=outcome),
    }


def heard_check(obs: Observations, *, elevation: bool) -> dict[str, object]:
    """Leave-one-firing-position-out and fit-on-all parameters and scores."""
    fps = sorted(set(obs.firing_position.tolist()))
    held_out: dict[str, object] = {}
    p_held = np.empty_like(obs.distance_m)
    for fp in fps:
        test_rows = obs.firing_position == fp
        params = fit(obs.select(~test_rows), elevation=elevation)
        p_held[test_rows] = p_heard(params, obs.select(test_rows))
        held_out[fp] = {
            "parameters": dict(zip(PARAMETER_NAMES, params.tolist(), strict=True)),
            **scores(p=p_held[test_rows], outcome=obs.heard[test_rows]),
        }
    params_all = fit(obs, elevation=elevation)
    p_all = p_heard(params_all, obs)
    in_sample = {
        fp: scores(p=p_all[obs.firing_position == fp], outcome=obs.heard[obs.firing_position == fp]) for fp in fps
    }
    return {
        "leave_one_out": held_out,
        "fit_on_all": {"parameters": dict(zip(PARAMETER_NAMES, params_all.tolist(), strict=True)), **in_sample},
        "p_held_out": p_held,
    }


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check the coverage model against ShotSpotter's Pittsburgh live-fire test (FP1-FP5): "
        "which sensors heard each shot (ROC AUC, Brier, reliability; fitted on four firing positions, "
        "scored on the fifth) and predicted vs measured 95 % position error.",
    )
    parser.add_argument(
        "dir", type=Path, metavar="PITTSBURGH_DIR", help="the dataset folder, e.g. ../shared/data/pittsburgh"
    )
    parser.add_argument(
        "--out", type=Path, help="write the JSON report here, e.g. benchmarks/results/coverage_validate.json"
    )
    parser.add_argument("--plots", type=Path, help="folder for the PNGs (default: beside --out; none without --out)")
    return parser


def main(argv: list[str], *, prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    if not args.dir.is_dir():
        raise ConfigError(f"{args.dir}: no such folder; expected the Pittsburgh live-fire dataset (FP1 ... FP5)")
    try:
        tests, problems = load_tests(args.dir, firing_positions=FIRING_POSITIONS)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from exc
    missing = sorted(set(FIRING_POSITIONS) - {t.firing_position for t in tests})
    if missing:
        raise ConfigError(f"{args.dir}: no readable tests for {', '.join(missing)}; expected FP1-FP5")
    report = run(tests, dataset=args.dir)
    report["meta"] = {
        **provenance("sedcity coverage validate " + " ".join(argv)),
        "dataset": str(args.dir),
        "licence": "Pittsburgh live-fire data: CC BY 4.0, ShotSpotter, Inc.",
    }
    report["problems"] = [{"path": p.path, "reason": p.reason} for p in problems]
    print_table(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")
    plot_dir = args.plots or (args.out.parent if args.out is not None else None)
    if plot_dir is not None:
        from sed.coverage.validate_plot import plot_error, plot_reliability

        stem = args.out.stem if args.out is not None else "coverage_validate"
        for path in (
            plot_reliability(report, plot_dir / f"{stem}_reliability.png"),
            plot_error(report, plot_dir / f"{stem}_error.png"),
        ):
            print(f"wrote {path}")
    return 0


def run(tests: list[LiveFireTest], *, dataset: Path) -> dict[str, object]:
    """Both checks on ``tests`` (FP1-FP5); the report without its provenance."""
    obs, skipped = observations(tests)
    with_elevation = heard_check(obs, elevation=True)
    distance_only = heard_check(obs, elevation=False)
    sigma_s = timing_sigma_s(tests)
    predicted = predicted_errors(tests, obs, with_elevation.pop("p_held_out"), sigma_s)  # type: ignore[arg-type]
    distance_only.pop("p_held_out")
    measured = measured_errors(tests, dataset)
    error: dict[str, object] = {}
    for fp, pred in predicted.items():
        meas = measured[fp]
        error[fp] = {
            **pred,
            **{f"measured_{k}": v for k, v in meas.items()},
            "ratio_with_survey": _ratio(pred["with_survey_95_m"], meas["error_95_m"]),
            "ratio_bound_to_spread": _ratio(pred["bound_95_m"], meas["spread_95_m"]),
        }
    held = with_elevation["leave_one_out"]
    targets = {
        fp: {
            "roc_auc": held[fp]["roc_auc"] >= TARGET_AUC,  # type: ignore[index]
            "brier": held[fp]["brier"] <= TARGET_BRIER,  # type: ignore[index]
            "error_within_factor_2": _within_factor(error[fp]["ratio_with_survey"]),  # type: ignore[index]
        }
        for fp in predicted
    }
    return {
        "definitions": {
            "sensor_set": "every sensor that reported any pulse at that firing position (18 tests), within 3 km",
            "heard": f"a pulse from -{EARLY_WINDOW_NS // 1_000_000} to +{LATE_WINDOW_NS // 1_000_000} ms of the "
            "direct arrival (emission time from ShotSpotter's tuple solved by our solver)",
            "p_heard": "logistic((L + elevation_gain_db_per_deg * elevation_deg - threshold_db) / slope_db); L = "
            "received 1-s Leq of the gunshot class (125 dB at 1 m, 1 kHz) with excess_db_per_km, 3-D distance",
            "headline": "leave_one_out: parameters fitted on the four other firing positions",
            "predicted_error": "Cramer-Rao 95 % radius at the survey point, sensors weighted by held-out P(heard), "
            "timing sigma from the other firing positions; with_survey adds the survey point's GPS error "
            f"({SURVEY_ACCURACY_68_M} m as a 68 % radius)",
            "measured_error": "sed bench localize, pulses mode, default settings: 95th percentile of the 2-D error "
            "about the survey point (error_95_m) and about the shots' centroid (spread_95_m)",
        },
        "rounds_without_reference_time": skipped,
        "observations": {fp: int(np.sum(obs.firing_position == fp)) for fp in FIRING_POSITIONS},
        "heard": with_elevation,
        "heard_distance_only": distance_only,
        "timing_sigma_s": sigma_s,
        "error": error,
        "targets": targets,
    }


def _ratio(predicted: float | None, measured: float | int | None) -> float | None:
    return None if predicted is None or not measured else float(predicted) / float(measured)


def _within_factor(ratio: float | None) -> bool:
    return ratio is not None and 1.0 / TARGET_ERROR_FACTOR <= ratio <= TARGET_ERROR_FACTOR


def print_table(report: dict) -> None:
    held = report["heard"]["leave_one_out"]
    base = report["heard_distance_only"]["leave_one_out"]
    print(
        f"{'FP':<4} {'n':>5} {'heard':>6} | {'AUC':>6} {'Brier':>6} | {'AUC-d':>6} {'Brier-d':>7} | "
        f"{'excess':>6} {'thresh':>6} {'slope':>5} {'elev':>5} | {'sigma ms':>8} {'bound':>6} {'+survey':>7} "
        f"{'meas95':>6} {'ratio':>5} {'spread95':>8} {'ratio':>5}"
    )
    for fp, h in held.items():
        d, e, p = base[fp], report["error"][fp], h["parameters"]
        print(
            f"{fp:<4} {h['n']:>5} {h['heard_share']:>6.2f} | {h['roc_auc']:>6.3f} {h['brier']:>6.3f} | "
            f"{d['roc_auc']:>6.3f} {d['brier']:>7.3f} | {p['excess_db_per_km']:>6.1f} {p['threshold_db']:>6.1f} "
            f"{p['slope_db']:>5.1f} {p['elevation_gain_db_per_deg']:>5.2f} | {e['timing_sigma_s'] * 1e3:>8.2f} "
            f"{e['bound_95_m']:>6.2f} {e['with_survey_95_m']:>7.2f} {_num(e['measured_error_95_m'])} "
            f"{_num(e['ratio_with_survey'], 5)} {_num(e['measured_spread_95_m'], 8)} "
            f"{_num(e['ratio_bound_to_spread'], 5)}"
        )
    all_p = report["heard"]["fit_on_all"]["parameters"]
    print("fit on all: " + ", ".join(f"{k} = {v:.3g}" for k, v in all_p.items()))
    print(
        "AUC/Brier: held out (fitted on the other four FPs); -d: without the elevation term. bound: Cramer-Rao 95 % "
        "radius, m; +survey: with the survey point's GPS error; meas95: sed bench localize 95th percentile error "
        "about the survey point; spread95: about the shots' centroid; ratio = predicted / measured"
    )


def _num(value: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


__all__ = ["Observations", "fit", "main", "observations", "p_heard", "roc_auc", "run"]
