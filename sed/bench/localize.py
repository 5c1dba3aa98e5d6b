"""``sed bench localize``: the Pittsburgh live-fire shots through the fusion node, scored.

Every test's arrivals are replayed, in arrival order and in virtual time, into the real
:class:`~sed.fusion.incidents.IncidentBuilder` (:mod:`sed.bench.localize_node`), and the
incidents it commits are scored: what a city gets, not a parallel path. Two modes:

* ``pulses``: ShotSpotter's pulse picks (``allpulses.json``: direct sounds, echoes and
  unrelated impulses from every reporting sensor), each one a detection. Their grouping
  (``nlos-tuples.json``) is used only to score the association and to tell which incident
  is which round. Baseline in the same run: our solver on *their* groups.
* ``audio``: our onset picker (:func:`sed.dsp.onset.find_onsets`) on the 4-6 WAVs per
  test, each onset a detection with its directness: the sensor-to-fusion path.

The builder's settings are a ``[fusion]`` section (the server's defaults with this
bench's per-mode overrides, :data:`FUSION_OVERRIDES`, and the flags), printed in the
report; the builder gets each test's temperature and METAR wind (``--no-wind``: still
air). Both association methods are run by default (``--association both``) and the one
that meets more of issue 10's targets is named. Positions are scored against the
surveyed firing position (smartphone GPS, about 2.5 m) beside ShotSpotter's published
figures (TN 098, Table III, MLG, 2D).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sed import wire
from sed.bench import localize_score as scoring
from sed.bench.localize_audio import audio_arrivals, coverage, read_recordings
from sed.bench.localize_node import DETECTOR_LATENCY_S, fusion_settings, located_groups, replay, settings_record
from sed.bench.localize_pulses import pulse_arrivals, tuple_baseline
from sed.bench.pittsburgh import LiveFireTest, Problem, load_tests
from sed.bench.report import provenance
from sed.config import FusionSection
from sed.errors import SedError
from sed.fusion.associate import Group
from sed.fusion.locate import Arrival, Solution, locate
from sed.units import NS_PER_S

MODES = ("pulses", "audio")
ASSOCIATIONS = ("neighbourhood", "likelihood")
#: Per-mode changes to the server's ``[fusion]`` defaults (the bench's settings before it
#: ran through the node, unchanged): ShotSpotter's sensors stand hundreds of metres apart
#: with paths bent round buildings, so the tolerance is theirs (tuple residuals < 40 ms;
#: pulses are ms picks, 20 ms), and a group needs four sensors. ``incident_merge_s = 0``
#: makes every round an incident of its own, so each round's fix is scored (merged rounds
#: keep their own fixes in the builder; an incident shows only its best).
FUSION_OVERRIDES: dict[str, dict[str, object]] = {
    "pulses": {"max_timing_error_ms": 20.0, "min_sensors": 4, "incident_merge_s": 0.0},
    "audio": {"max_timing_error_ms": 40.0, "min_sensors": 4, "incident_merge_s": 0.0},
}
#: Audio mode's picker (it finds the weak direct sounds of far sensors; association sorts
#: out the extra clutter); ``min_dominance_db`` None keeps every onset.
PICKER_DEFAULTS: dict[str, float | None] = {"min_snr_db": 9.0, "jump_db": 7.0, "min_dominance_db": None}
#: A test's poles: sensor id -> (x, y, z), m.
Poles = dict[str, tuple[float, float, float]]
#: Flags that override a ``[fusion]`` key of the same name.
_FUSION_FLAGS = ("max_timing_error_ms", "min_sensors", "min_participation", "hearing_range_m", "association_wait_s")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Replay every round of ShotSpotter's Pittsburgh live-fire test into the fusion node's incident "
            "builder and score the incidents it commits (2-D error to the surveyed firing position), beside "
            "ShotSpotter's published MLG figures."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sedcity bench localize ../shared/data/pittsburgh --out benchmarks/results/localize.json",
    )
    parser.add_argument("dir", type=Path, help="the pittsburgh folder (holding FP1 … FP5)")
    parser.add_argument(
        "--mode",
        choices=("pulses", "audio", "both"),
        default="both",
        help="pulses: ShotSpotter's pulse picks as detections; audio: our picker on the WAVs; both (default)",
    )
    parser.add_argument(
        "--association",
        choices=(*ASSOCIATIONS, "both"),
        default="both",
        help="[fusion] association of the builder; both (default): run each and name the better",
    )
    parser.add_argument("--out", type=Path, help="write the JSON report (summary and every shot) here")
    parser.add_argument(
        "--plots",
        type=Path,
        help="folder for one PNG per firing position (default: beside --out, named after it; none without --out)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNGs")
    parser.add_argument(
        "--firing-positions", help="comma-separated firing positions to run (default: every FP folder found)"
    )
    for name, text in (
        ("max-timing-error-ms", "[fusion] max_timing_error_ms (default 20 in pulses mode, 40 in audio mode)"),
        ("min-participation", "[fusion] min_participation (default the server's)"),
        ("hearing-range-m", "[fusion] hearing_range_m (default the server's)"),
        ("association-wait-s", "[fusion] association_wait_s (default the server's)"),
    ):
        parser.add_argument(f"--{name}", type=float, help=text)
    parser.add_argument("--min-sensors", type=int, help="[fusion] min_sensors (default 4)")
    parser.add_argument(
        "--min-dominance-db",
        type=float,
        help="audio mode: keep only onsets at least this much louder than anything in the 300 ms before them "
        "(default: keep all; association weighs dominance through each onset's directness)",
    )
    parser.add_argument("--min-snr-db", type=float, help="audio mode: picker's minimum onset SNR, dB (default 9)")
    parser.add_argument("--jump-db", type=float, help="audio mode: picker's minimum power jump, dB (default 7)")
    parser.add_argument(
        "--no-wind", action="store_true", help="still air (default: the METAR wind of each test's weather.json)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str], *, prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    modes = MODES if args.mode == "both" else (args.mode,)
    methods = ASSOCIATIONS if args.association == "both" else (args.association,)
    firing_positions = (
        tuple(fp.strip() for fp in args.firing_positions.split(",") if fp.strip()) if args.firing_positions else None
    )
    tests, problems = load_tests(args.dir, firing_positions=firing_positions)
    if not tests:
        raise SedError(f"{args.dir}: no readable tests for firing positions {firing_positions}")
    report: dict[str, object] = {"meta": _meta(args, argv), "modes": {}}
    for mode in modes:
        arrivals, poles, clips_coverage = _arrivals(tests, mode, args, problems, progress=not args.no_progress)
        runs = {}
        for method in methods:
            config = fusion_settings({**FUSION_OVERRIDES[mode], **_flags(args), "association": method})
            runs[method] = _run(tests, mode, config, arrivals, poles, clips_coverage, wind=not args.no_wind)
            if mode == "audio":
                runs[method]["settings"]["picker"] = _picker(args)
            _print_table(mode, runs[method])
        primary = runs[methods[0]]
        primary["associations"] = {m: run for m, run in runs.items() if m != methods[0]}
        if len(runs) > 1:
            primary["better_association"] = scoring.better(mode, runs)
            print(f"{mode}: better by measurement: {primary['better_association']}")
        report["modes"][mode] = primary  # type: ignore[index]
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


def located_pulse_shots(tests: list[LiveFireTest], *, dataset: Path) -> list[scoring.ShotResult]:
    """Every shot the node commits from ShotSpotter's pulses with this bench's default settings
    and the association that locates this sparse array best by measurement (likelihood): what
    ``sedcity bench localize DATASET --mode pulses --association likelihood`` scores (the
    coverage model's "measured")."""
    args = _parser("sedcity bench localize").parse_args([str(dataset)])
    arrivals, poles, covered = _arrivals(tests, "pulses", args, [], progress=False)
    config = fusion_settings({**FUSION_OVERRIDES["pulses"], "association": "likelihood"})
    return _replay_tests(tests, "pulses", config, arrivals, poles, covered, wind=True, baseline=False).rows


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name) for name in _FUSION_FLAGS if getattr(args, name) is not None}


def _picker(args: argparse.Namespace) -> dict[str, float | None]:
    return {
        name: getattr(args, name) if getattr(args, name) is not None else PICKER_DEFAULTS[name]
        for name in PICKER_DEFAULTS
    }


def _arrivals(
    tests: list[LiveFireTest], mode: str, args: argparse.Namespace, problems: list[Problem], *, progress: bool
) -> tuple[dict[str, list[Arrival]], dict[str, Poles], dict[tuple[str, int], int | None]]:
    """Per test: its arrivals, its poles and (audio) how many recordings hold each round."""
    from tqdm import tqdm

    arrivals, poles, covered = {}, {}, {}
    picker = _picker(args)
    for test in tqdm(tests, desc=f"pick {mode}", unit="test", disable=not progress or mode != "audio", file=sys.stderr):
        if mode == "pulses":
            arrivals[test.test_id] = pulse_arrivals(test)
            poles[test.test_id] = {p.serial: p.position_m for p in test.pulses}
            continue
        clips = read_recordings(test, problems)
        dominance = picker["min_dominance_db"]
        arrivals[test.test_id] = audio_arrivals(
            clips,
            min_dominance_db=-np.inf if dominance is None else dominance,
            min_snr_db=picker["min_snr_db"],  # type: ignore[arg-type]
            jump_db=picker["jump_db"],  # type: ignore[arg-type]
        )
        poles[test.test_id] = {serial: clip.recording.position_m for serial, clip in clips.items()}
        for shot in scoring.reference_shots(test):
            covered[(test.test_id, shot.index)] = coverage(test, clips, shot.origin_time_ns)
    return arrivals, poles, covered


@dataclasses.dataclass(kw_only=True)
class _Scored:
    """One mode and association over every test: scored rows, unmatched incidents, node counters."""

    rows: list[scoring.ShotResult] = dataclasses.field(default_factory=list)
    unmatched: list[tuple[LiveFireTest, Group]] = dataclasses.field(default_factory=list)
    baseline: list[scoring.ShotResult] = dataclasses.field(default_factory=list)
    node: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"detections": 0, "located": 0, "unlocated": 0, "not_drained": 0, "cpu_s": 0.0}
    )


def _run(
    tests: list[LiveFireTest],
    mode: str,
    config: FusionSection,
    arrivals: dict[str, list[Arrival]],
    poles: dict[str, Poles],
    covered: dict[tuple[str, int], int | None],
    *,
    wind: bool,
) -> dict[str, object]:
    """Replay every test into a fresh builder and score what it committed: a mode report."""
    started = time.perf_counter()
    scored = _replay_tests(tests, mode, config, arrivals, poles, covered, wind=wind, baseline=mode == "pulses")
    node = dict(scored.node)
    node["cpu_ms_per_detection"] = 1e3 * node.pop("cpu_s") / max(node["detections"], 1)
    return _mode_report(
        tests, scored, settings_record(config) | {"wind": wind}, elapsed_s=time.perf_counter() - started, node=node,
        mode=mode,
    )  # fmt: skip


def _replay_tests(
    tests: list[LiveFireTest],
    mode: str,
    config: FusionSection,
    arrivals: dict[str, list[Arrival]],
    poles: dict[str, Poles],
    covered: dict[tuple[str, int], int | None],
    *,
    wind: bool,
    baseline: bool,
) -> _Scored:
    scored = _Scored()
    latency_ns = round(DETECTOR_LATENCY_S * NS_PER_S)
    for test in tests:
        wind_m_per_s = test.wind_m_per_s if wind else None
        test_arrivals = arrivals[test.test_id]
        result = replay(
            test_arrivals, config=config, temperature_c=test.temperature_c, poles=poles[test.test_id],
            wind_m_per_s=wind_m_per_s, latency_s=DETECTOR_LATENCY_S,
        )  # fmt: skip
        groups = located_groups(result, test_arrivals)
        scored.node["detections"] += result.n_detections
        scored.node["cpu_s"] += result.cpu_s
        scored.node["not_drained"] += not result.drained
        scored.node["located"] += len(groups)
        scored.node["unlocated"] += sum(i.stage is wire.IncidentStage.UNLOCATED for i in result.incidents)
        delays = {
            id(group): (result.located_at_ns[incident_id] - min(a.arrival_time_ns for a in group.arrivals) - latency_ns)
            / NS_PER_S
            for incident_id, group in groups.items()
            if group.arrivals and incident_id in result.located_at_ns
        }
        keys = {p.uuid: (p.serial, p.arrival_time_ns) for p in test.pulses} if mode == "pulses" else None
        results, extra = scoring.score_test(test, list(groups.values()), pulse_keys=keys, located_after_s=delays)
        if mode == "audio":
            results = [dataclasses.replace(r, audio_coverage=covered[(test.test_id, r.shot_index)]) for r in results]
        scored.rows += results
        scored.unmatched += [(test, g) for g in extra]
        if baseline:
            scored.baseline += tuple_baseline(test, solve=_solver(test, wind_m_per_s))
    return scored


def _solver(test: LiveFireTest, wind_m_per_s: tuple[float, float] | None) -> Callable[[list[Arrival]], Solution]:
    """The node's solver with the test's air, for the tuple baseline."""

    def solve(arrivals: list[Arrival]) -> Solution:
        return locate(arrivals, temperature_c=test.temperature_c, wind_m_per_s=wind_m_per_s)

    return solve


def _mode_report(
    tests: list[LiveFireTest],
    scored: _Scored,
    settings: dict[str, object],
    *,
    elapsed_s: float,
    node: dict[str, float],
    mode: str,
) -> dict[str, object]:
    rows, unmatched, baseline_rows = scored.rows, scored.unmatched, scored.baseline
    survey = {t.firing_position: t.survey_m for t in tests}
    per_fp: dict[str, dict[str, object]] = {}
    for fp in [*sorted({t.firing_position for t in tests}), "all"]:
        chosen = [r for r in rows if fp in ("all", r.firing_position)]
        extra = [g for t, g in unmatched if fp in ("all", t.firing_position)]
        summary = scoring.summarize(
            chosen,
            false_groups=len(extra),
            false_group_pulses=sum(len(g.arrivals) for g in extra),
            survey_m=survey,
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
        "node": node,
        "targets": scoring.targets(mode, per_fp),
        "per_firing_position": per_fp,
        "shots": [r.__dict__ for r in rows],
        "false_groups": [
            {
                "test_id": t.test_id,
                "firing_position": t.firing_position,
                "x_m": g.solution.position_m[0],
                "y_m": g.solution.position_m[1],
                "origin_time_ns": g.solution.origin_time_ns,
                "sensors": list(g.solution.sensor_ids),
            }
            for t, g in unmatched
        ],
    }


def _print_table(mode: str, report: dict) -> None:
    node = report["node"]
    print(
        f"\n{mode} mode, association {report['settings']['association']} ({report['elapsed_s']:.1f} s; "
        f"[fusion] {report['settings']}; node: {node})"
    )
    print(
        f"{'FP':<4} {'located':>9} {'false':>5} {'median':>7} {'p90':>7} {'RMS':>7} {'centr.':>7} {'<=15m':>6} "
        f"{'<=25m':>6} {'sens':>5} {'recall':>6} {'prec':>6} {'loc. s':>6} | {'SST eps':>7} {'SST rms':>7}"
        f" | {'tuples RMS':>10} {'ratio':>6}"
    )
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
            f"{_f(s['median_located_after_s'], 6, 2)} | {_f(sst.get('survey_error_m'))} {_f(sst.get('rms_error_m'))}"
            f" | {_f(base.get('rms_error_m'), 10)} {_f(ratio, 6, 2)}"
        )
    targets = report["targets"]
    print(f"targets met {targets['met']}/{targets['of']}: " + ", ".join(
        f"{name} {'yes' if ok else 'NO'}" for name, ok in targets["checks"].items()
    ))  # fmt: skip
    print(
        "errors: 2-D distance of each committed incident to the survey point, m; centr.: distance of the shots' "
        "centroid to it; loc. s: median time from an incident's first detection reaching the node to it being "
        "located; SST: ShotSpotter TN 098 Table III, MLG 2D (rms = sqrt(eps^2 + sigma1^2 + sigma2^2)); tuples: our "
        "solver on ShotSpotter's own pulse groups (same run); ratio = our RMS / tuples RMS"
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


__all__ = ["ASSOCIATIONS", "FUSION_OVERRIDES", "MODES", "PICKER_DEFAULTS", "located_pulse_shots", "main"]
