"""Leave-one-firing-position-out check of the hand-set onset directness (``sed bench localize``, audio).

:func:`sed.dsp.onset.directness` turns an onset's dominance and jump into log-odds with round
numbers set by hand while looking at the Pittsburgh onsets (there is no held-out firing
position). This script asks how much the audio result owes to that choice: for each firing
position it fits the same two weights and bias by logistic regression on the *other four*
(onsets labelled direct when they are the nearest onset, within 50 ms, to the direct arrival
predicted from the survey point and ShotSpotter's emission time of a round), runs the audio
mode on the held-out one with the fitted directness, and adds up the held-out results.

    python benchmarks/localize_lofo.py ../shared/data/pittsburgh --out benchmarks/results/localize_lofo.json

Writes the per-fold weights and the pooled held-out result next to the hand-set run's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

import sed.dsp.onset as onset
from sed.bench import localize_score as scoring
from sed.bench.localize import main as bench_main
from sed.bench.localize_audio import read_recordings
from sed.bench.pittsburgh import load_tests
from sed.units import NS_PER_S, speed_of_sound_m_per_s

FIRING_POSITIONS = ("FP1", "FP2", "FP3", "FP4", "FP5")
#: The bench's audio picker settings.
PICKER = {"min_snr_db": 9.0, "jump_db": 7.0}
LABEL_WINDOW_S = 0.05


def labelled_onsets(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per firing position: features (dominance dB, jump dB) of every onset, and direct labels."""
    tests, _ = load_tests(root, firing_positions=FIRING_POSITIONS)
    out: dict[str, tuple[list[list[float]], list[bool]]] = {fp: ([], []) for fp in FIRING_POSITIONS}
    for test in tests:
        c = speed_of_sound_m_per_s(test.temperature_c)
        origins = [s.origin_time_ns for s in scoring.reference_shots(test) if s.origin_time_ns is not None]
        for clip in read_recordings(test, []).values():
            rate = clip.sample_rate_hz
            picks = onset.find_onsets(clip.audio, sample_rate_hz=rate, **PICKER)
            times_s = np.array([p.sample_index / rate for p in picks])
            sensor = clip.recording.position_m
            distance_m = math.hypot(sensor[0] - test.survey_m[0], sensor[1] - test.survey_m[1])
            direct = np.zeros(len(picks), dtype=bool)
            for origin_ns in origins:
                expected_s = (origin_ns - clip.recording.start_time_ns) / NS_PER_S + distance_m / c
                near = np.flatnonzero(np.abs(times_s - expected_s) < LABEL_WINDOW_S)
                if near.size:
                    direct[near[np.argmin(np.abs(times_s[near] - expected_s))]] = True
            features, labels = out[test.firing_position]
            features += [[p.dominance_db, p.jump_db] for p in picks]
            labels += direct.tolist()
    return {fp: (np.array(f, dtype=np.float64).reshape(-1, 2), np.array(y)) for fp, (f, y) in out.items()}


def fit_logistic(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights (dominance, jump, bias) of a logistic regression (Newton steps, tiny ridge); the
    bias drops the training set's base rate, so 0 means as likely direct as not."""
    x = np.column_stack(
        [np.clip(features[:, 0], -15.0, 30.0), np.clip(features[:, 1], 7.0, 35.0), np.ones(len(features))]
    )
    w = np.zeros(3)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(3)
        step = np.linalg.solve(hessian, x.T @ (labels - p))
        w += step
        if np.abs(step).max() < 1e-9:
            break
    prior = labels.mean()
    w[2] -= math.log(prior / (1.0 - prior))
    return w


def held_out_run(root: Path, fp: str, weights: np.ndarray | None, workdir: Path) -> dict:
    original = onset.directness
    if weights is not None:

        def fitted(dominance_db: float, jump_db: float) -> float:
            z = weights[0] * min(max(dominance_db, -15.0), 30.0) + weights[1] * min(max(jump_db, 7.0), 35.0)
            return float(np.clip(z + weights[2], -5.0, 5.0))

        onset.directness = fitted  # type: ignore[assignment]
    try:
        out = workdir / f"{fp}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            bench_main([str(root), "--mode", "audio", "--association", "likelihood", "--firing-positions", fp,
                        "--out", str(out), "--no-plots", "--no-progress"], prog="localize_lofo")  # fmt: skip
    finally:
        onset.directness = original
    return json.loads(out.read_text())["modes"]["audio"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the pittsburgh folder")
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args()
    data = labelled_onsets(args.dir)
    folds, pooled = [], {"fitted": [], "hand_set": []}
    with tempfile.TemporaryDirectory() as tmp:
        for fp in FIRING_POSITIONS:
            train = [g for g in FIRING_POSITIONS if g != fp]
            weights = fit_logistic(
                np.concatenate([data[g][0] for g in train]), np.concatenate([data[g][1] for g in train])
            )
            fitted = held_out_run(args.dir, fp, weights, Path(tmp))
            hand = held_out_run(args.dir, fp, None, Path(tmp))
            pooled["fitted"] += fitted["shots"]
            pooled["hand_set"] += hand["shots"]
            folds.append(
                {
                    "held_out": fp,
                    "weights_dominance_jump_bias": weights.tolist(),
                    "fitted": fitted["per_firing_position"][fp],
                    "hand_set": hand["per_firing_position"][fp],
                }
            )
            print(f"{fp}: weights {np.round(weights, 3)}", file=sys.stderr)
    summary = {}
    for name, shots in pooled.items():
        errors = np.array([s["error_m"] for s in shots if s["located"]])
        summary[name] = {"fired": len(shots), "located": int(errors.size), "median_error_m": float(np.median(errors)),
                         "within_15m": float(np.sum(errors <= 15.0) / len(shots))}  # fmt: skip
        print(f"{name:>9}: located {errors.size}/{len(shots)}, median {np.median(errors):.2f} m, "
              f"within 15 m {np.sum(errors <= 15.0) / len(shots):.3f}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"folds": folds, "pooled": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
