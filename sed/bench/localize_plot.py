"""One PNG per firing position for ``sed bench localize``: sensors, survey point, the incidents
the node committed and their 95 % error ellipses; one row per mode and association (overview,
and a zoom on the survey point)."""

from __future__ import annotations

from pathlib import Path

from sed.bench.pittsburgh import LiveFireTest

#: Half-width of the zoomed panel, m.
ZOOM_M = 25.0


def plot_firing_positions(tests: list[LiveFireTest], report: dict, folder: Path, *, stem: str) -> list[Path]:
    """Write ``<stem>_<FP>.png`` per firing position into ``folder``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    folder.mkdir(parents=True, exist_ok=True)
    runs = [
        (f"{mode} {run['settings']['association']}", run)
        for mode, primary in report["modes"].items()
        for run in (primary, *primary.get("associations", {}).values())
    ]
    paths = []
    for fp in sorted({t.firing_position for t in tests}):
        fp_tests = [t for t in tests if t.firing_position == fp]
        survey = fp_tests[0].survey_m
        sensors = {p.serial: p.position_m for t in fp_tests for p in t.pulses}
        audio_sensors = {r.serial: r.position_m for t in fp_tests for r in t.recordings}
        figure, axes = plt.subplots(len(runs), 2, figsize=(11, 5.2 * len(runs)), squeeze=False)
        for row, (name, run) in enumerate(runs):
            shots = [s for s in run["shots"] if s["firing_position"] == fp and s["located"]]
            ghosts = [g for g in run["false_groups"] if g["firing_position"] == fp]
            summary = run["per_firing_position"][fp]
            overview, zoom = axes[row]
            for panel in (overview, zoom):
                panel.scatter(
                    [p[0] - survey[0] for p in sensors.values()], [p[1] - survey[1] for p in sensors.values()],
                    marker="^", c="0.6", s=30, label="pulse-reporting sensors",
                )  # fmt: skip
                panel.scatter(
                    [p[0] - survey[0] for p in audio_sensors.values()],
                    [p[1] - survey[1] for p in audio_sensors.values()],
                    marker="^", c="tab:blue", s=40, label="sensors with audio",
                )  # fmt: skip
                panel.scatter(
                    [s["x_m"] - survey[0] for s in shots], [s["y_m"] - survey[1] for s in shots],
                    marker="+", c="tab:red", s=40, label="incidents committed",
                )  # fmt: skip
                panel.scatter(
                    [g["x_m"] - survey[0] for g in ghosts], [g["y_m"] - survey[1] for g in ghosts],
                    marker="x", c="tab:orange", s=25, label="incidents matching no round",
                )  # fmt: skip
                panel.scatter([0], [0], marker="*", c="k", s=150, label="survey point", zorder=5)
                panel.set_aspect("equal")
                panel.set_xlabel("east of survey point (m)")
                panel.set_ylabel("north of survey point (m)")
            for shot in shots:
                if shot["ellipse_95_m"] is None:
                    continue
                major, minor, angle = shot["ellipse_95_m"]
                zoom.add_patch(
                    Ellipse(
                        (shot["x_m"] - survey[0], shot["y_m"] - survey[1]), 2 * major, 2 * minor, angle=angle,
                        fill=False, color="tab:red", alpha=0.35, lw=0.8,
                    )
                )  # fmt: skip
            zoom.set_xlim(-ZOOM_M, ZOOM_M)
            zoom.set_ylim(-ZOOM_M, ZOOM_M)
            overview.set_xlim(-1000, 1000)
            overview.set_ylim(-1000, 1000)
            overview.legend(loc="lower left", fontsize=7)
            sst = summary.get("shotspotter_mlg_2d", {})
            overview.set_title(
                f"{fp} {name}: located {summary['located']}/{summary['fired']}, false {summary['false_groups']}",
                fontsize=9,
            )
            zoom.set_title(
                f"median {_fmt(summary['median_error_m'])} m, RMS {_fmt(summary['rms_error_m'])} m, centroid "
                f"{_fmt(summary.get('centroid_error_m'))} m (ShotSpotter MLG {_fmt(sst.get('survey_error_m'))} m); "
                "95 % ellipses",
                fontsize=8,
            )
        figure.suptitle(f"Pittsburgh live-fire test, {fp} (data CC BY 4.0 ShotSpotter, Inc.)", fontsize=10)
        figure.tight_layout(rect=(0.0, 0.0, 1.0, 0.985))
        path = folder / f"{stem}_{fp}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)
    return paths


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


__all__ = ["ZOOM_M", "plot_firing_positions"]
