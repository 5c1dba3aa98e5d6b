"""Table and PNG of ``sedcity bench snr-curve`` (the ``classes`` section of its JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sed.bench.report import table


def curve_table(classes: dict[str, Any], snr_db: tuple[float, ...]) -> str:
    """Per step and class: detected/trials = measured [95 % interval] -> the isotonic curve."""
    rows = []
    for k, snr in enumerate(snr_db):
        row: dict[str, Any] = {"snr": f"{snr:+.0f} dB"}
        for label, c in classes.items():
            row[label] = (
                f"{c['n_detected'][k]}/{c['n_trials'][k]} = {c['p_detect_measured'][k]:.2f} "
                f"[{c['ci95_low'][k]:.2f}-{c['ci95_high'][k]:.2f}] -> {c['p_detect'][k]:.2f}"
            )
        rows.append(row)
    floor = {"snr": "background only"}
    for label, c in classes.items():
        floor[label] = f"{c['background_only']['n_detected']}/{c['background_only']['n_trials']}"
    rows.append(floor)
    legend = "detected/trials = measured [95 % Clopper-Pearson] -> isotonic curve (what the planner uses)"
    return legend + "\n" + table(rows, [("snr", "SNR"), *((label, label) for label in classes)])


def plot_curves(path: Path, classes: dict[str, Any], snr_db: tuple[float, ...], *, model_version: str) -> None:
    """Measured fractions with their 95 % intervals, the isotonic curve and the background floor, per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gunshot": "#d62728", "scream": "#ff7f0e", "glass_break": "#1f77b4"}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    snr = np.asarray(snr_db)
    for label, c in classes.items():
        colour = colours.get(label)
        measured = np.asarray(c["p_detect_measured"])
        err = [measured - np.asarray(c["ci95_low"]), np.asarray(c["ci95_high"]) - measured]
        ax.errorbar(snr, measured, yerr=err, fmt="o", color=colour, alpha=0.6, capsize=3, markersize=4)
        ax.plot(snr, c["p_detect"], "-", color=colour, label=f"{label} (n = {c['n_clips']} clips)")
        floor = c["background_only"]["n_detected"] / c["background_only"]["n_trials"]
        ax.axhline(floor, color=colour, linestyle=":", linewidth=1)
    ax.set_xlabel("SNR: 1-s Leq of the event - Leq of the background, dB")
    ax.set_ylabel("P(detect)")
    ax.set_title(f"{model_version}: detection vs SNR (dots: measured, 95 % CI; lines: isotonic; dotted: no event)")
    ax.title.set_fontsize(9)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["curve_table", "plot_curves"]
