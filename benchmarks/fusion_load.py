"""The fusion node under a New Year's Eve load, scored against ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fusion_load.py [--poles 50 200 1000]
        [--rates 10 300 1000] [--duration-s S] [--seed 0] [--max-cpu-s 120]
        [--transport {none,sqlite,postgresql}] [--against OLD.json | --baseline-ref REF]
        [--smoke] [--out benchmarks/results/fusion_load.json]

Each cell of the matrix poles x rates is a simulated city (:mod:`sed.bench.fusion_sim`):
poles on a 250 m grid, sources at random times and places (``rate`` a minute; 70 %
gunshots), each heard by every pole within 400 m after its travel time plus a 1 ms pick
error, its detection reaching the node 0.8-1.1 s later; 10 % spurious detections on top.
Its detections go, in arrival order and in virtual time, through the real incident
builder with the server's default ``[fusion]`` (:mod:`sed.bench.fusion_drive`); with
``--transport sqlite|postgresql`` also through a real ``sed fusion`` process over CURVE
into that store (:mod:`sed.bench.fusion_e2e`). The incidents are scored by
:data:`sed.bench.fusion_score.MATCHING_RULE`. A cell runs ``--duration-s`` (default: 100
sources' worth, at least 60 s and at most 600 s); a builder slower than ``--max-cpu-s``
is cut off there and only the sources heard by then are scored (marked ``cut``).

Reported (table on stdout with the issue's targets, JSON with provenance, PNG beside it):
sources located within 20 m (of those heard by at least 3 poles not all on one line, and of all), located
isolated sources, ghost incidents (share of located incidents), unlocated incidents,
first detection -> first alert and -> located p50/p99, busy CPU per detection and the
in-process detections/s, the restart time with 2,000 poles, how CPU and the figures grow
with poles and rate; end to end also acked detections/s and send -> ack p50/p99.

**Baseline.** The association being measured is the one being replaced, so the baseline is
another build of the node, on the same cells: ``--baseline-ref REF`` runs this benchmark's
cells in a subprocess on the ``sed`` package of git ``REF`` (``git archive``; this
checkout's simulator and scorer laid over it) and prints each figure's ratio to it;
``--against OLD.json`` does the same with a previous report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sed.bench.fusion_drive import Update, run_in_process, time_restart
from sed.bench.fusion_score import MATCHING_RULE, score
from sed.bench.fusion_sim import Scenario, simulate
from sed.bench.report import provenance, table
from sed.config import FusionSection

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fusion_load.json"
#: A cell simulates this many sources' worth of time by default, within these bounds, s.
SOURCES_PER_CELL, MIN_DURATION_S, MAX_DURATION_S = 100, 60.0, 600.0
#: Issue 10's targets: (minimum share of sources located within 20 m, maximum share of ghosts) by rate/min.
TARGETS_BY_RATE = {300.0: (0.95, 0.02), 1000.0: (0.80, 0.05)}
#: ... isolated sources all located, in-process detections per CPU second, restart with 2,000 poles, s.
TARGET_ISOLATED, TARGET_DETECTIONS_PER_S, TARGET_RESTART_S, RESTART_POLES = 1.0, 10_000.0, 1.0, 2000
#: Environment variable holding the PostgreSQL server URL for ``--transport postgresql``.
POSTGRES_URL_ENV = "SED_TEST_POSTGRES_URL"
#: Figures compared against a baseline: (key path, label).
COMPARED = [
    (("in_process", "located_fraction_locatable"), "located frac"),
    (("in_process", "ghost_fraction"), "ghost frac"),
    (("in_process", "cpu_us_per_detection"), "CPU µs/det"),
    (("in_process", "first_alert_s", "p99"), "alert p99 s"),
    (("in_process", "located_s", "p99"), "located p99 s"),
]


def cell_duration_s(rate_per_min: float) -> float:
    return min(max(SOURCES_PER_CELL / rate_per_min * 60, MIN_DURATION_S), MAX_DURATION_S)


def run_cell(args: argparse.Namespace, n_poles: int, rate_per_min: float, workdir: Path) -> dict[str, Any]:
    duration_s = args.duration_s or cell_duration_s(rate_per_min)
    scenario = simulate(n_poles=n_poles, sources_per_min=rate_per_min, duration_s=duration_s, seed=args.seed)
    print(f"{n_poles} poles, {rate_per_min:g}/min, {duration_s:g} s: {len(scenario.heard)} detections", file=sys.stderr)
    run = run_in_process(scenario, max_cpu_s=args.max_cpu_s)
    figures = score(scenario, run.updates, until_ns=run.fed_until_ns if run.truncated else None)
    cell: dict[str, Any] = {
        "poles": n_poles,
        "rate_per_min": rate_per_min,
        "duration_s": duration_s,
        "in_process": {
            **figures,
            "detections_fed": run.n_fed,
            "cut": run.truncated,
            "drained": run.drained,
            "cpu_busy_s": run.cpu_busy_s,
            "cpu_idle_s": run.cpu_idle_s,
            "cpu_us_per_detection": 1e6 * run.cpu_s_per_detection if run.n_fed else None,
            "detections_per_cpu_s": run.detections_per_cpu_s if run.n_fed else None,
            "wall_s": run.wall_s,
        },
    }
    if args.transport != "none":
        cell["end_to_end"] = run_end_to_end(args, scenario, workdir / f"{n_poles}_{rate_per_min:g}")
    return cell


def run_end_to_end(args: argparse.Namespace, scenario: Scenario, workdir: Path) -> dict[str, Any]:
    from sed.bench.fusion_e2e import replay_over_curve, scratch_database

    url = None if args.transport == "sqlite" else args.postgres_url
    # The node gets the city's hearing radius, as the in-process builder does (default_fusion).
    hearing = {"hearing_range_m": scenario.settings["hearing_radius_m"]}
    fusion = hearing if "hearing_range_m" in FusionSection.model_fields else {}
    workdir.mkdir(parents=True)
    with scratch_database(url, workdir) as store_url:
        report = replay_over_curve(
            scenario.heard, scenario.poles, store_url=store_url, workdir=workdir / "replay", fusion=fusion
        )
    # The report's times are in the scenario's time base already (fusion_e2e shifts them back).
    updates = [Update(at_ns=u.received_ns, incident=u.incident) for u in report.incident_updates]
    return {**score(scenario, updates), "transport": report.summary()}


def _get(cell: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = cell
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _ms(value: float | None) -> float | None:
    return None if value is None else 1000 * value


def rows(cells: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    out = []
    for cell in cells:
        f = cell.get(part)
        if f is None:
            continue
        row = {
            "cell": f"{cell['poles']} x {cell['rate_per_min']:g}/min" + (" cut" if f.get("cut") else ""),
            "s": cell["duration_s"],
            "sources": f["sources"],
            "dets": f["detections"],
            "loc": _pct(f["located_fraction_locatable"]),
            "loc_all": _pct(f["located_fraction"]),
            "iso": _pct(f["located_fraction_isolated"]),
            "ghost": _pct(f["ghost_fraction"]),
            "unloc": f["incidents_unlocated"],
            "a50": _ms(f["first_alert_s"]["p50"]),
            "a99": _ms(f["first_alert_s"]["p99"]),
            "l50": _ms(f["located_s"]["p50"]),
            "l99": _ms(f["located_s"]["p99"]),
        }
        if part == "in_process":
            row.update(cpu=f["cpu_us_per_detection"], dps=f["detections_per_cpu_s"])
        else:
            t = f["transport"]
            row.update(acked=t["acked_per_s"], k50=t["send_to_ack_ms"]["p50"], k99=t["send_to_ack_ms"]["p99"])
        out.append(row)
    return out


COLUMNS = [
    ("cell", "poles x rate"),
    ("s", "s"),
    ("sources", "sources"),
    ("dets", "dets"),
    ("loc", "located %"),
    ("loc_all", "of all %"),
    ("iso", "isolated %"),
    ("ghost", "ghosts %"),
    ("unloc", "unlocated"),
    ("a50", "alert p50 ms"),
    ("a99", "p99"),
    ("l50", "located p50 ms"),
    ("l99", "p99"),
]


def targets(cells: list[dict[str, Any]], restart_s: float, restart_poles: int) -> list[str]:
    """One line per target of issue 10: the figure, the target, and whether it is met."""

    def line(what: str, value: float | None, goal: float, *, at_least: bool, unit: str = "%", scale: float = 100):
        sign = ">=" if at_least else "<="
        if value is None:  # e.g. no isolated source in a crowded cell: nothing to judge
            return f"  n/a  {what}: no case (target {sign} {scale * goal:g} {unit})"
        ok = value >= goal if at_least else value <= goal
        return (
            f"  {'ok  ' if ok else 'MISS'} {what}: {scale * value:.1f} {unit} (target {sign} {scale * goal:g} {unit})"
        )

    lines = []
    for cell in cells:
        f, name = cell["in_process"], f"{cell['poles']} poles x {cell['rate_per_min']:g}/min"
        goal = TARGETS_BY_RATE.get(cell["rate_per_min"])
        if goal is not None:
            lines.append(line(f"{name} located", f["located_fraction_locatable"], goal[0], at_least=True))
            lines.append(line(f"{name} ghosts", f["ghost_fraction"], goal[1], at_least=False))
        lines.append(line(f"{name} isolated located", f["located_fraction_isolated"], TARGET_ISOLATED, at_least=True))
        lines.append(
            line(
                f"{name} in-process",
                f["detections_per_cpu_s"],
                TARGET_DETECTIONS_PER_S,
                at_least=True,
                unit="det/s",
                scale=1,
            )
        )
    lines.append(
        line(f"restart, {restart_poles} poles", restart_s, TARGET_RESTART_S, at_least=False, unit="s", scale=1)
    )
    return lines


#: Figures whose growth with poles and rate is fitted: (name, key path in a cell).
GROWING = [
    ("cpu_us_per_detection", ("in_process", "cpu_us_per_detection")),
    ("ghost_fraction", ("in_process", "ghost_fraction")),
    ("first_alert_p99_s", ("in_process", "first_alert_s", "p99")),
    ("located_p99_s", ("in_process", "located_s", "p99")),
]


def growth(cells: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per figure of :data:`GROWING`: its log-log slope against poles (per rate) and against rate
    (per pole count); 1 means it grows in proportion, ``None`` too few positive values to fit."""

    def slope(points: list[tuple[float, Any]]) -> float | None:
        pairs = [(x, y) for x, y in points if y is not None and y > 0]
        if len(pairs) < 2:
            return None
        x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
        return round(float(np.polyfit(x, y, 1)[0]), 3)

    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, path in GROWING:
        vs_poles = {
            f"{rate:g}/min": slope([(c["poles"], _get(c, path)) for c in cells if c["rate_per_min"] == rate])
            for rate in sorted({c["rate_per_min"] for c in cells})
        }
        vs_rate = {
            f"{poles} poles": slope([(c["rate_per_min"], _get(c, path)) for c in cells if c["poles"] == poles])
            for poles in sorted({c["poles"] for c in cells})
        }
        out[name] = {"vs_poles": vs_poles, "vs_rate": vs_rate}
    return out


def compare(cells: list[dict[str, Any]], old: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cell in both reports: each compared figure now, in the baseline, and now / baseline."""
    before = {(c["poles"], c["rate_per_min"]): c for c in old.get("cells", [])}
    out = []
    for cell in cells:
        base = before.get((cell["poles"], cell["rate_per_min"]))
        if base is None:
            continue
        row: dict[str, Any] = {"cell": f"{cell['poles']} x {cell['rate_per_min']:g}/min"}
        for path, label in COMPARED:
            now, then = _get(cell, path), _get(base, path)
            row[label] = now
            row[f"{label} base"] = then
            row[f"{label} ratio"] = now / then if now is not None and then else None
        out.append(row)
    return out


def baseline_report(ref: str, argv: list[str], workdir: Path) -> dict[str, Any]:
    """This benchmark's cells run on the ``sed`` package of git ``ref``, with this simulator and scorer."""
    tree = workdir / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "sed"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline-ref {ref}: git archive failed: {archive.stderr.decode(errors='replace')[:300]}")
    (workdir / "baseline.tar").write_bytes(archive.stdout)
    with tarfile.open(workdir / "baseline.tar") as tar:
        tar.extractall(tree, filter="data")
    for name in ("fusion_sim.py", "fusion_drive.py", "fusion_score.py"):
        shutil.copy(ROOT / "sed" / "bench" / name, tree / "sed" / "bench" / name)
    out = workdir / "baseline.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, *argv, "--transport", "none", "--out", str(out)]
    print(f"baseline: the same cells on git {ref} …", file=sys.stderr)
    done = subprocess.run(command, env=env, cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"--baseline-ref {ref}: the baseline run failed (exit {done.returncode})")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=False)
    # The baseline ran outside the repository: its provenance cannot name the commit, so name it here.
    return {**json.loads(out.read_text()), "git_commit": commit.stdout.strip() or ref}


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loc, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for poles in sorted({c["poles"] for c in cells}):
        these = sorted((c for c in cells if c["poles"] == poles), key=lambda c: c["rate_per_min"])
        rates = [c["rate_per_min"] for c in these]
        located = [_pct(c["in_process"]["located_fraction_locatable"]) for c in these]
        ghosts = [_pct(c["in_process"]["ghost_fraction"]) for c in these]
        (line,) = ax_loc.plot(
            rates, [np.nan if v is None else v for v in located], "o-", label=f"{poles} poles located"
        )
        ax_loc.plot(rates, [np.nan if v is None else v for v in ghosts], "x--", color=line.get_color(), label="ghosts")
    ax_loc.set(
        xscale="log", xlabel="sources per minute", ylabel="%", ylim=(-2, 102), title="located within 20 m, ghosts"
    )
    ax_loc.legend(fontsize=7)
    for rate in sorted({c["rate_per_min"] for c in cells}):
        these = sorted((c for c in cells if c["rate_per_min"] == rate), key=lambda c: c["poles"])
        cpu = [c["in_process"]["cpu_us_per_detection"] for c in these]
        ax_cpu.plot([c["poles"] for c in these], [np.nan if v is None else v for v in cpu], "o-", label=f"{rate:g}/min")
    ax_cpu.axhline(1e6 / TARGET_DETECTIONS_PER_S, color="grey", linestyle=":", label="target")
    ax_cpu.set(xscale="log", yscale="log", xlabel="poles", ylabel="µs CPU per detection", title="in-process cost")
    ax_cpu.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poles", type=int, nargs="+", default=[50, 200, 1000], help="pole counts (grid)")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 300.0, 1000.0], help="sources per minute")
    parser.add_argument("--duration-s", type=float, default=None, help="simulated time per cell (default: by rate)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cpu-s", type=float, default=120.0, help="cut a cell off after this much builder CPU")
    parser.add_argument("--transport", choices=("none", "sqlite", "postgresql"), default="none")
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_URL_ENV), help=f"default ${POSTGRES_URL_ENV}")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--against", type=Path, default=None, help="a previous report to print ratios against")
    baseline.add_argument("--baseline-ref", default=None, help="git ref whose builder runs the same cells as baseline")
    parser.add_argument("--smoke", action="store_true", help="50 poles, 10/min, 30 s; restart with 200 poles")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report; the PNG goes beside it")
    args = parser.parse_args(argv)
    if args.smoke:
        args.poles, args.rates, args.duration_s = [50], [10.0], args.duration_s or 30.0
    if args.transport != "none":
        try:
            from sed.bench.fusion_e2e import replay_over_curve  # noqa: F401
        except ImportError as exc:
            parser.error(f"--transport {args.transport} needs sed.bench.fusion_e2e.replay_over_curve: {exc}")
        if args.transport == "postgresql" and not args.postgres_url:
            parser.error(
                f"--transport postgresql needs --postgres-url or ${POSTGRES_URL_ENV} (scripts/start-postgres.sh)"
            )
    if args.against is not None and not args.against.is_file():
        parser.error(f"--against {args.against}: no such file")

    with tempfile.TemporaryDirectory(prefix="fusion_load_") as tmp:
        old = json.loads(args.against.read_text()) if args.against else None
        if args.baseline_ref:
            old = baseline_report(args.baseline_ref, _cell_arguments(args), Path(tmp))
        restart_s = time_restart(n_poles=200 if args.smoke else RESTART_POLES)
        cells = [run_cell(args, poles, rate, Path(tmp)) for poles in args.poles for rate in args.rates]

    report: dict[str, Any] = {
        **provenance("python benchmarks/fusion_load.py " + " ".join(argv)),
        "matching_rule": MATCHING_RULE,
        "settings": {"seed": args.seed, "max_cpu_s": args.max_cpu_s, "transport": args.transport},
        "restart_s": {"poles": 200 if args.smoke else RESTART_POLES, "seconds": restart_s},
        "cells": cells,
        "growth": growth(cells),
        "targets": {
            "by_rate_per_min": {
                f"{r:g}": {"located_min": g[0], "ghosts_max": g[1]} for r, g in TARGETS_BY_RATE.items()
            },
            "isolated_located": TARGET_ISOLATED,
            "in_process_detections_per_s": TARGET_DETECTIONS_PER_S,
            "restart_s": TARGET_RESTART_S,
        },
    }
    in_process = rows(cells, "in_process")
    columns = [*COLUMNS, ("cpu", "CPU µs/det"), ("dps", "det/CPU s")]
    print(f"\nIn process ({MATCHING_RULE})\n" + table(in_process, columns))
    if any("end_to_end" in c for c in cells):
        e2e_columns = [*COLUMNS, ("acked", "acked/s"), ("k50", "ack p50 ms"), ("k99", "ack p99 ms")]
        print(f"\nEnd to end over CURVE, {args.transport}\n" + table(rows(cells, "end_to_end"), e2e_columns))
    print(f"\nRestart: builder + {report['restart_s']['poles']} poles' positions in {restart_s:.3f} s")
    slopes = report["growth"]
    print("Growth (log-log slope of each figure against poles, per rate, and against rate, per pole count):")
    for name, fitted in slopes.items():
        print(f"  {name}: vs poles {json.dumps(fitted['vs_poles'])}; vs rate {json.dumps(fitted['vs_rate'])}")
    print("\nTargets (issue 10)\n" + "\n".join(targets(cells, restart_s, report["restart_s"]["poles"])))
    if old is not None:
        compared = compare(cells, old)
        report["baseline"] = {
            "source": str(args.against) if args.against else f"git {args.baseline_ref}",
            "git_commit": old.get("git_commit"),
            "cells": compared,
        }
        header = [("cell", "poles x rate")]
        for _, label in COMPARED:
            header += [(label, label), (f"{label} base", "base"), (f"{label} ratio", "now/base")]
        print(f"\nAgainst {report['baseline']['source']} ({old.get('git_commit')})\n" + table(compared, header))
        old_restart_s = _get(old, ("restart_s", "seconds"))
        if old_restart_s:
            print(f"Restart: {restart_s:.3f} s, base {old_restart_s:.3f} s, now/base {restart_s / old_restart_s:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    plot(cells, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)
    return 0


def _cell_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments that choose the cells, for the baseline's run of the same ones."""
    out = ["--poles", *map(str, args.poles), "--rates", *map(str, args.rates), "--seed", str(args.seed)]
    out += ["--max-cpu-s", str(args.max_cpu_s)]
    out += ["--duration-s", str(args.duration_s)] if args.duration_s else []
    return out + (["--smoke"] if args.smoke else [])


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
