"""``sed bench localize``: locate the Pittsburgh live-fire shots and score them.

Two modes, both ending in the same :func:`~sed.fusion.associate.associate` and
:func:`~sed.fusion.locate.locate` the fusion node runs:

* ``pulses``: ShotSpotter's pulse picks (``allpulses.json``: direct sounds, echoes and
  unrelated impulses from every reporting sensor) are associated and located by us. Their
  grouping (``nlos-tuples.json``) is used only to score the association and to tell which
  of our groups is which round. Baseline in the same run: our solver on *their* groups.
* ``audio``: our onset picker (:func:`sed.dsp.onset.find_onsets`) on the 4-6 WAVs per
  test, then association and location: the sensor-to-fusion path on real recordings.

Both modes associate with the likelihood method (every arrival carries a directness judged
at the sensor; rounds from one place support each other) and solve the final positions
with the METAR wind of the test (``--no-wind`` for still air). Positions are scored against
the surveyed firing position (smartphone GPS, about 2.5 m) and printed beside ShotSpotter's
published figures (TN 098, Table III, MLG, 2D).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sed.bench import localize_score as scoring
from sed.bench.localize_audio import Clip, audio_arrivals, coverage, read_recordings, refine_with_gcc
from sed.bench.localize_pulses import pulse_arrivals, tuple_baseline
from sed.bench.pittsburgh import LiveFireTest, Problem, load_tests
from sed.bench.report import provenance
from sed.errors import SedError
from sed.fusion.associate import METHODS, Group, LikelihoodModel, associate
from sed.fusion.locate import Arrival, Solution, locate

MODES = ("pulses", "audio")
#: Per-mode defaults. The pulse stream is dense (about 20 sensors, echoes and unrelated
#: impulses) with 4-24 sensors per shot and ms picks; audio has 4-6 sensors, where losing
#: one member loses the shot, so its tolerance is ShotSpotter's own (tuple residuals
#: < 40 ms), and a more sensitive picker (it finds the weak direct sounds of far sensors;
#: the association sorts out the extra clutter). ``min_participation`` applies to
#: ``--association consensus`` only.
DEFAULTS: dict[str, dict[str, float | str | None]] = {
    "pulses": {"min_sensors": 4, "min_participation": 0.4, "max_timing_error_ms": 20.0, "association": "likelihood"},
    "audio": {
        "min_sensors": 4,
        "min_participation": 0.0,
        "max_timing_error_ms": 40.0,
        "association": "likelihood",
        "min_snr_db": 9.0,
        "jump_db": 7.0,
        "min_dominance_db": None,
    },
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Locate every round of ShotSpotter's Pittsburgh live-fire test and score the 2-D error "
            "against the surveyed firing position, beside ShotSpotter's published MLG figures."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sedcity bench localize ../shared/data/pittsburgh --mode both "
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
        help="audio mode: keep only onsets at least this much louder than anything in the 300 ms before them "
        "(default: keep all; the likelihood association weighs dominance through each onset's directness)",
    )
    parser.add_argument("--min-snr-db", type=float, help="audio mode: picker's minimum onset SNR, dB (default 9)")
    parser.add_argument("--jump-db", type=float, help="audio mode: picker's minimum power jump, dB (default 7)")
    parser.add_argument(
        "--association",
        choices=METHODS,
        help="association method (default likelihood; consensus: largest consistent groups first)",
    )
    parser.add_argument(
        "--cluster-radius-m",
        type=float,
        default=LikelihoodModel.cluster_radius_m,
        help="likelihood association: groups this close support each other as rounds from one place "
        f"(default {LikelihoodModel.cluster_radius_m:g}; 0 switches that off)",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=LikelihoodModel.min_score,
        help=f"likelihood association: smallest total log-likelihood ratio of a source "
        f"(default {LikelihoodModel.min_score:g})",
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
    parser.add_argument(
        "--no-wind",
        action="store_true",
        help="solve in still air (default: correct for the METAR wind of each test's weather.json)",
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
    def pick(name: str) -> object:
        given = getattr(args, name)
        return given if given is not None else DEFAULTS[mode].get(name)

    settings: dict[str, object] = {
        "max_timing_error_s": float(pick("max_timing_error_ms")) / 1e3,  # type: ignore[arg-type]
        "min_sensors": pick("min_sensors"),
        "min_participation": pick("min_participation"),
        "association": pick("association"),
        "cluster_radius_m": args.cluster_radius_m,
        "min_score": args.min_score,
        "source_height": args.source_height,
        "solver": args.solver,
        "wind": not args.no_wind,
    }
    if mode == "audio":
        settings |= {name: pick(name) for name in ("min_snr_db", "jump_db", "min_dominance_db")}
        settings["gcc"] = args.gcc
    return settings


def located_pulse_shots(tests: list[LiveFireTest], *, dataset: Path) -> list[scoring.ShotResult]:
    """Every shot solved from ShotSpotter's pulses with this bench's default settings: what
    ``sedcity bench localize DATASET --mode pulses`` scores (the coverage model's "measured")."""
    settings = _settings(_parser("sedcity bench localize").parse_args([str(dataset)]), "pulses")
    rows, _, _ = _run_mode(tests, "pulses", settings, [], progress=False)
    return rows


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
        arrivals = pulse_arrivals(test) if mode == "pulses" else _audio_arrivals(clips, settings)
        groups, _ = associate(
            arrivals,
            temperature_c=test.temperature_c,
            max_timing_error_s=float(settings["max_timing_error_s"]),  # type: ignore[arg-type]
            min_sensors=int(settings["min_sensors"]),  # type: ignore[call-overload]
            min_participation=float(settings["min_participation"]),  # type: ignore[arg-type]
            source_z_m=source_z_m,
            method=str(settings["association"]),
            likelihood=LikelihoodModel(
                cluster_radius_m=float(settings["cluster_radius_m"]),  # type: ignore[arg-type]
                min_score=float(settings["min_score"]),  # type: ignore[arg-type]
            ),
        )
        solve = _Solve(
            temperature_c=test.temperature_c,
            source_z_m=source_z_m,
            method=str(settings["solver"]),
            wind_m_per_s=test.wind_m_per_s if settings["wind"] else None,
        )
        groups = [_resolve(g, solve) for g in groups]
        if mode == "audio" and settings["gcc"]:
            groups = [refine_with_gcc(g, clips, solve=solve) for g in groups]
        solve_ms = {id(g): _time_locate(g, solve) for g in groups}
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
            baseline += tuple_baseline(test, solve=solve)
    return rows, unmatched, baseline


def _audio_arrivals(clips: dict[str, Clip], settings: dict[str, object]) -> list[Arrival]:
    dominance = settings["min_dominance_db"]
    return audio_arrivals(
        clips,
        min_dominance_db=-np.inf if dominance is None else float(dominance),  # type: ignore[arg-type]
        min_snr_db=float(settings["min_snr_db"]),  # type: ignore[arg-type]
        jump_db=float(settings["jump_db"]),  # type: ignore[arg-type]
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Solve:
    """How a group's final position is computed: :func:`~sed.fusion.locate.locate` with these."""

    temperature_c: float
    source_z_m: float | None
    method: str
    wind_m_per_s: tuple[float, float] | None

    def __call__(self, arrivals: Sequence[Arrival]) -> Solution:
        return locate(
            arrivals, temperature_c=self.temperature_c, source_z_m=self.source_z_m, method=self.method,
            wind_m_per_s=self.wind_m_per_s,
        )  # fmt: skip


def _resolve(group: Group, solve: _Solve) -> Group:
    """The group with its final solution (association solves in still air with "ml")."""
    solution = solve(group.arrivals)
    return dataclasses.replace(group, solution=solution) if solution.status == "located" else group


def _time_locate(group: Group, solve: _Solve) -> float:
    started = time.perf_counter()
    solve(group.arrivals)
    return (time.perf_counter() - started) * 1e3


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
        f"{'<=25m':>6} {'sens':>5} {'recall':>6} {'prec':>6} {'ms':>5} | {'SST eps':>7} {'SST rms':>7} {'SST n':>6}"
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
            f"{_f(s['median_solve_ms'], 5, 2)} | {_f(sst.get('survey_error_m'))} {_f(sst.get('rms_error_m'))} "
            f"{_f(sst.get('mean_sensors'), 6, 1)}"
            f" | {_f(base.get('rms_error_m'), 10)} {_f(ratio, 6, 2)}"
        )
    print(
        "errors: 2-D distance to the survey point, m; centr.: distance of the shots' centroid to it (ShotSpotter's "
        "'survey error'); SST: ShotSpotter TN 098 Table III, MLG 2D (rms = sqrt(eps^2 + sigma1^2 + sigma2^2), the "
        "per-shot RMS their figures imply); tuples: our solver on ShotSpotter's own pulse groups (same run); ratio = "
        "our RMS / tuples RMS; ms: median solve time per shot"
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
    return {
        **provenance("sedcity bench localize " + " ".join(argv)),
        "numpy": np.__version__,
        "dataset": str(args.dir),
        "licence": "Pittsburgh live-fire data: CC BY 4.0, ShotSpotter, Inc.",
    }


__all__ = ["located_pulse_shots", "main"]
