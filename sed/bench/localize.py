"""``sed bench localize``: locate the Pittsburgh live-fire shots and score them.

Two modes, both ending in the same :func:`~sed.fusion.associate.associate` and
:func:`~sed.fusion.locate.locate` the fusion node runs:

* ``pulses``: ShotSpotter's pulse picks (``allpulses.json``: direct sounds, echoes and
  unrelated impulses from every reporting sensor) are associated and located by us. Their
  grouping (``nlos-tuples.json``) is used only to score the association and to tell which
  of our groups is which round. Baseline in the same run: our solver on *their* groups.
* ``audio``: our onset picker (:func:`sed.dsp.onset.find_onsets`) on the 4-6 WAVs per
  test, then association and location: the sensor-to-fusion path on real recordings.

Positions are scored against the surveyed firing position (smartphone GPS, about 2.5 m)
and printed beside ShotSpotter's published figures (TN 098, Table III, MLG, 2D).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sed.bench import localize_score as scoring
from sed.bench.localize_audio import audio_arrivals, coverage, read_recordings, refine_with_gcc
from sed.bench.pittsburgh import LiveFireTest, Problem, load_tests
from sed.errors import SedError
from sed.fusion.associate import Group, associate
from sed.fusion.locate import Arrival, locate

MODES = ("pulses", "audio")
#: Timing uncertainty given to a ShotSpotter pulse (ms picks, paths bent by buildings), ns.
PULSE_UNCERTAINTY_NS = 5_000_000
#: Per-mode defaults. The pulse stream is dense (about 20 sensors, echoes and unrelated
#: impulses) with 8-21 sensors per shot; audio has 4-6 sensors, where losing one member
#: loses the shot, so its tolerance is ShotSpotter's own (tuple residuals < 40 ms).
DEFAULTS: dict[str, dict[str, float]] = {
    "pulses": {"min_sensors": 5, "min_participation": 0.4, "max_timing_error_ms": 20.0},
    "audio": {"min_sensors": 4, "min_participation": 0.0, "max_timing_error_ms": 40.0},
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Locate every round of ShotSpotter's Pittsburgh live-fire test and score the 2-D error "
            "against the surveyed firing position, beside ShotSpotter's published MLG figures."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sed bench localize ../shared/data/pittsburgh --mode both "
        "--out benchmarks/results/localize.json",
    )
    parser.add_argument("dir", type=Path, help="the pittsburgh folder (holding FP1 … FP5)")
    parser.add_argument(
        "--mode",
        choices=("pulses", "audio", "both"),
        default="both",
        help="pulses: associate + locate ShotSpotter's pulse picks; audio: our picker on the WAVs, "
        "then associate + locate; both (default)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON report (summary and every shot) here")
    parser.add_argument(
        "--plots",
        type=Path,
        help="folder for one PNG per firing position and mode (default: beside --out, named after it; "
        "none without --out)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNGs")
    parser.add_argument(
        "--firing-positions",
        default="FP1,FP2,FP3,FP4,FP5",
        help="comma-separated firing positions to run (default FP1,FP2,FP3,FP4,FP5)",
    )
    parser.add_argument(
        "--max-timing-error-ms",
        type=float,
        help="association tolerance: largest residual of a member arrival, ms (default 20 in pulses mode, "
        "40 in audio mode)",
    )
    parser.add_argument(
        "--min-sensors",
        type=int,
        help="smallest group that counts as a located shot (default 5 in pulses mode, 4 in audio mode)",
    )
    parser.add_argument(
        "--min-participation",
        type=float,
        help="share of the live sensors within a group's reach that must be members (default 0.4 in "
        "pulses mode, off in audio mode, where only 4-6 sensors have audio)",
    )
    parser.add_argument(
        "--source-height",
        choices=("plane", "survey"),
        default="plane",
        help="plane (default): solve in the horizontal plane (ShotSpotter's 2D); survey: 3-D distances "
        "to a source at the survey height (2.5D; uses the survey elevation as a terrain model would)",
    )
    parser.add_argument(
        "--min-dominance-db",
        type=float,
        default=0.0,
        help="audio mode: keep onsets at least this much louder than anything in the 300 ms before them "
        "(default 0; echoes follow a louder sound)",
    )
    parser.add_argument(
        "--gcc",
        action="store_true",
        help="audio mode: re-time each group's members by GCC-PHAT against its strongest member before the final solve",
    )
    parser.add_argument(
        "--solver",
        choices=("ml", "mlg"),
        default="ml",
        help="final position: ml (default) = robust maximum likelihood; mlg = the closed-form least "
        "squares of Mathias, Leonardi and Galati that ShotSpotter's Table III uses",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str], *, prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    modes = MODES if args.mode == "both" else (args.mode,)
    firing_positions = tuple(fp.strip() for fp in args.firing_positions.split(",") if fp.strip())
    tests, problems = load_tests(args.dir, firing_positions=firing_positions)
    if not tests:
        raise SedError(f"{args.dir}: no readable tests for firing positions {firing_positions}")
    report: dict[str, object] = {"meta": _meta(args, argv), "modes": {}}
    for mode in modes:
        started = time.perf_counter()
        settings = _settings(args, mode)
        rows, unmatched, baseline_rows = _run_mode(tests, mode, settings, problems, progress=not args.no_progress)
        elapsed_s = time.perf_counter() - started
        report["modes"][mode] = _mode_report(tests, rows, unmatched, baseline_rows, settings, elapsed_s)  # type: ignore[index]
        _print_table(mode, report["modes"][mode])  # type: ignore[index]
    report["problems"] = [{"path": p.path, "reason": p.reason} for p in problems]
    for problem in problems:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
        print(f"wrote {args.out}")
    plot_dir = args.plots or (args.out.parent if args.out is not None else None)
    if plot_dir is not None and not args.no_plots:
        from sed.bench.localize_plot import plot_firing_positions

        stem = args.out.stem if args.out is not None else "localize"
        for path in plot_firing_positions(tests, report, plot_dir, stem=stem):
            print(f"wrote {path}")
    return 0


def _settings(args: argparse.Namespace, mode: str) -> dict[str, object]:
    return {
        "max_timing_error_s": (
            args.max_timing_error_ms if args.max_timing_error_ms is not None else DEFAULTS[mode]["max_timing_error_ms"]
        )
        / 1e3,
        "min_sensors": args.min_sensors if args.min_sensors is not None else DEFAULTS[mode]["min_sensors"],
        "min_participation": (
            args.min_participation if args.min_participation is not None else DEFAULTS[mode]["min_participation"]
        ),
        "source_height": args.source_height,
        "solver": args.solver,
        "min_dominance_db": args.min_dominance_db,
        "gcc": args.gcc,
    }


def _run_mode(
    tests: list[LiveFireTest], mode: str, settings: dict[str, object], problems: list[Problem], *, progress: bool
) -> tuple[list[scoring.ShotResult], list[tuple[LiveFireTest, Group]], list[scoring.ShotResult]]:
    from tqdm import tqdm

    rows: list[scoring.ShotResult] = []
    unmatched: list[tuple[LiveFireTest, Group]] = []
    baseline: list[scoring.ShotResult] = []
    for test in tqdm(tests, desc=f"localize {mode}", unit="test", disable=not progress, file=sys.stderr):
        source_z_m = test.survey_m[2] if settings["source_height"] == "survey" else None
        clips = read_recordings(test, problems) if mode == "audio" else {}
        arrivals = (
            pulse_arrivals(test)
            if mode == "pulses"
            else audio_arrivals(clips, min_dominance_db=float(settings["min_dominance_db"]))  # type: ignore[arg-type]
        )
        groups, _ = associate(
            arrivals,
            temperature_c=test.temperature_c,
            max_timing_error_s=float(settings["max_timing_error_s"]),  # type: ignore[arg-type]
            min_sensors=int(settings["min_sensors"]),  # type: ignore[call-overload]
            min_participation=float(settings["min_participation"]),  # type: ignore[arg-type]
            source_z_m=source_z_m,
        )
        method = str(settings["solver"])
        groups = [_resolve(g, test.temperature_c, source_z_m, method) for g in groups]
        if settings["gcc"] and mode == "audio":
            groups = [
                refine_with_gcc(g, clips, temperature_c=test.temperature_c, source_z_m=source_z_m, method=method)
                for g in groups
            ]
        solve_ms = {id(g): _time_locate(g, test.temperature_c, source_z_m, method) for g in groups}
        keys = {p.uuid: (p.serial, p.arrival_time_ns) for p in test.pulses} if mode == "pulses" else None
        results, extra = scoring.score_test(test, groups, pulse_keys=keys, solve_ms=solve_ms)
        if mode == "audio":
            origins = {s.index: s.origin_time_ns for s in scoring.reference_shots(test)}
            results = [
                dataclasses.replace(r, audio_coverage=coverage(test, clips, origins[r.shot_index])) for r in results
            ]
        rows += results
        unmatched += [(test, g) for g in extra]
        if mode == "pulses":
            baseline += _tuple_baseline(test, source_z_m, method)
    return rows, unmatched, baseline


def pulse_arrivals(test: LiveFireTest) -> list[Arrival]:
    """Every pulse of the test as an arrival (detection_id = pulse uuid)."""
    return [
        Arrival(
            sensor_id=p.serial,
            position_m=p.position_m,
            arrival_time_ns=p.arrival_time_ns,
            uncertainty_ns=PULSE_UNCERTAINTY_NS,
            label="gunshot",
            detection_id=p.uuid,
            quality=max(p.snr_db, 1.0) if np.isfinite(p.snr_db) else 1.0,
        )
        for p in test.pulses
    ]


def _resolve(group: Group, temperature_c: float, source_z_m: float | None, method: str) -> Group:
    """The group with its solution from ``method`` (association itself always uses "ml")."""
    if method == "ml":
        return group
    solution = locate(group.arrivals, temperature_c=temperature_c, source_z_m=source_z_m, method=method)
    return dataclasses.replace(group, solution=solution) if solution.status == "located" else group


def _time_locate(group: Group, temperature_c: float, source_z_m: float | None, method: str) -> float:
    started = time.perf_counter()
    locate(group.arrivals, temperature_c=temperature_c, source_z_m=source_z_m, method=method)
    return (time.perf_counter() - started) * 1e3


def _tuple_baseline(test: LiveFireTest, source_z_m: float | None, method: str) -> list[scoring.ShotResult]:
    """Our solver on ShotSpotter's own pulse groups (first pulse per sensor)."""
    by_uuid = {p.uuid: p for p in test.pulses}
    groups = []
    for uuids in test.shot_pulse_uuids:
        first: dict[str, Arrival] = {}
        for pulse in sorted((by_uuid[u] for u in uuids if u in by_uuid), key=lambda p: p.arrival_time_ns):
            first.setdefault(
                pulse.serial,
                Arrival(
                    sensor_id=pulse.serial,
                    position_m=pulse.position_m,
                    arrival_time_ns=pulse.arrival_time_ns,
                    uncertainty_ns=PULSE_UNCERTAINTY_NS,
                    detection_id=pulse.uuid,
                ),
            )
        solution = locate(list(first.values()), temperature_c=test.temperature_c, source_z_m=source_z_m, method=method)
        if solution.status == "located":
            groups.append(Group(label="gunshot", arrivals=tuple(first.values()), solution=solution))
    results, _ = scoring.score_test(test, groups)
    return results


def _mode_report(
    tests: list[LiveFireTest],
    rows: list[scoring.ShotResult],
    unmatched: list[tuple[LiveFireTest, Group]],
    baseline_rows: list[scoring.ShotResult],
    settings: dict[str, object],
    elapsed_s: float,
) -> dict[str, object]:
    survey = {t.firing_position: t.survey_m for t in tests}
    per_fp: dict[str, object] = {}
    for fp in [*sorted({t.firing_position for t in tests}), "all"]:
        chosen = [r for r in rows if fp in ("all", r.firing_position)]
        extra = [g for t, g in unmatched if fp in ("all", t.firing_position)]
        summary = scoring.summarize(
            chosen, false_groups=len(extra), false_group_pulses=sum(len(g.arrivals) for g in extra), survey_m=survey
        )
        if baseline_rows:
            base = [r for r in baseline_rows if fp in ("all", r.firing_position)]
            summary["baseline_tuples"] = scoring.summarize(base, false_groups=0, false_group_pulses=0, survey_m=survey)
        if fp in scoring.SHOTSPOTTER_MLG_2D:
            summary["shotspotter_mlg_2d"] = scoring.SHOTSPOTTER_MLG_2D[fp]
        per_fp[fp] = summary
    return {
        "settings": settings,
        "elapsed_s": elapsed_s,
        "per_firing_position": per_fp,
        "shots": [r.__dict__ for r in rows],
        "false_groups": [
            {
                "test_id": t.test_id,
                "firing_position": t.firing_position,
                "x_m": g.solution.position_m[0] if g.solution.position_m else None,
                "y_m": g.solution.position_m[1] if g.solution.position_m else None,
                "origin_time_ns": g.solution.origin_time_ns,
                "sensors": list(g.solution.sensor_ids),
            }
            for t, g in unmatched
        ],
    }


def _print_table(mode: str, report: dict) -> None:
    print(f"\n{mode} mode ({report['elapsed_s']:.1f} s; settings {report['settings']})")
    header = (
        f"{'FP':<4} {'located':>9} {'false':>5} {'median':>7} {'p90':>7} {'RMS':>7} {'centr.':>7} {'<=15m':>6} "
        f"{'<=25m':>6} {'sens':>5} {'recall':>6} {'prec':>6} {'ms':>5} | {'SST eps':>7} {'SST n':>6}"
        f" | {'tuples RMS':>10} {'ratio':>6}"
    )
    print(header)
    for fp, s in report["per_firing_position"].items():
        sst = s.get("shotspotter_mlg_2d", {})
        base = s.get("baseline_tuples", {})
        ratio = (
            s["rms_error_m"] / base["rms_error_m"] if base.get("rms_error_m") and s["rms_error_m"] is not None else None
        )
        print(
            f"{fp:<4} {s['located']:>4}/{s['fired']:<4} {s['false_groups']:>5} {_f(s['median_error_m'])} "
            f"{_f(s['p90_error_m'])} {_f(s['rms_error_m'])} {_f(s.get('centroid_error_m'))} "
            f"{_f(s['within_15m'], 6, 2)} {_f(s['within_25m'], 6, 2)} {_f(s['mean_sensors'], 5, 1)} "
            f"{_f(s.get('association_recall'), 6, 3)} {_f(s.get('association_precision'), 6, 3)} "
            f"{_f(s['median_solve_ms'], 5, 2)} | {_f(sst.get('survey_error_m'))} {_f(sst.get('mean_sensors'), 6, 1)}"
            f" | {_f(base.get('rms_error_m'), 10)} {_f(ratio, 6, 2)}"
        )
    print(
        "errors: 2-D distance to the survey point, m; centr.: distance of the shots' centroid to it (ShotSpotter's "
        "'survey error'); SST: ShotSpotter TN 098 Table III, MLG 2D; tuples: our solver on ShotSpotter's own pulse "
        "groups (same run); ratio = our RMS / tuples RMS; ms: median solve time per shot"
    )


def _f(value: float | None, width: int = 7, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _meta(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, object]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "command": "sed bench localize " + " ".join(argv),
        "git_commit": commit,
        "git_dirty": dirty,
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "dataset": str(args.dir),
        "licence": "Pittsburgh live-fire data: CC BY 4.0, ShotSpotter, Inc.",
    }  # fmt: skip


__all__ = ["main", "pulse_arrivals"]
