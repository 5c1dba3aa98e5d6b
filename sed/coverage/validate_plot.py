"""PNG plots of ``sedcity coverage validate``: reliability per firing position, predicted vs
measured 95 % position error."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_reliability(report: dict, path: Path) -> Path:
    """One panel per firing position: observed share heard vs mean predicted P(heard), held out;
    marker area in proportion to the rows of each decile."""
    held = report["heard"]["leave_one_out"]
    base = report["heard_distance_only"]["leave_one_out"]
    fig, axes = plt.subplots(1, len(held), figsize=(3.2 * len(held), 3.4), sharey=True)
    for ax, (fp, scores) in zip(axes, held.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.7", lw=1)
        for name, s, style in (("distance + elevation", scores, "o-"), ("distance only", base[fp], "s--")):
            bins = s["reliability"]
            line = ax.plot(
                [b["p_mean"] for b in bins],
                [b["observed"] for b in bins],
                style[1:],
                lw=1,
                label=f"{name}: AUC {s['roc_auc']:.2f}, Brier {s['brier']:.3f}",
            )[0]
            # marker area in proportion to the rows in the bin: sparse bins scatter most
            ax.scatter(
                [b["p_mean"] for b in bins],
                [b["observed"] for b in bins],
                s=[max(4.0, 0.4 * b["n"]) for b in bins],
                marker=style[0],
                color=line.get_color(),
            )
        ax.set_title(f"{fp} (held out, n={scores['n']})", fontsize=9)
        ax.set_xlabel("predicted P(heard)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6, loc="upper left")
    axes[0].set_ylabel("share that reported a pulse")
    fig.suptitle("Pittsburgh: which sensors heard each shot (fitted on the other four firing positions)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_error(report: dict, path: Path) -> Path:
    """Predicted vs measured 95 % error per firing position, with the factor-2 band."""
    error = report["error"]
    fig, ax = plt.subplots(figsize=(5.0, 4.6))
    values = []
    for fp, e in error.items():
        for predicted, measured, marker, label in (
            (e["with_survey_95_m"], e["measured_error_95_m"], "o", "bound + survey vs error about survey"),
            (e["bound_95_m"], e["measured_spread_95_m"], "^", "bound vs spread about centroid"),
        ):
            if measured is None:
                continue
            ax.scatter(measured, predicted, marker=marker, color=f"C{list(error).index(fp)}", label=f"{fp}: {label}")
            values += [predicted, measured]
    top = max(values) * 1.3 if values else 1.0
    ax.plot([0, top], [0, top], color="0.4", lw=1)
    ax.fill_between([0, top], [0, top / 2], [0, min(2 * top, 1e9)], color="0.9", zorder=0, label="within a factor 2")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("measured 95 % error, m (sed bench localize, pulses)")
    ax.set_ylabel("predicted 95 % error, m")
    ax.legend(fontsize=5.5, loc="upper left")
    ax.set_title("Pittsburgh: predicted vs measured position error", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
