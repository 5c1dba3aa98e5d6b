"""Provenance of every benchmark report; readable tables and PNG plots for ``sed bench detect``."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from sed.metrics import precision_recall_curve


def provenance(command: str) -> dict[str, Any]:
    """Git commit (with a ``+dirty`` mark), machine, date and ``command`` of a benchmark run:
    the provenance every report under ``benchmarks/results/`` starts with."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            # the reports themselves do not make a checkout dirty: rerunning one must not mark the next
            ["git", "-C", str(root), "status", "--porcelain", "--", ".", ":!benchmarks/results"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "git_commit": (commit or "unknown") + ("+dirty" if dirty else ""),
        "machine": {
            "node": platform.node(),
            "cpu": cpu or platform.processor(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Plain-text table; ``columns`` are (key, header) pairs."""
    cells = [[header for _, header in columns]] + [[_fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_pr_curves(
    path: Path,
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    operating_points: dict[str, tuple[float, float]],
) -> None:
    """One panel per label: precision–recall of each system from per-file maximum scores.

    ``curves[label][system] = (scores, positive)``; ``operating_points[label] = (recall, precision)``
    of sed at its shipped thresholds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(curves)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 4), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        for system, (scores, positive) in curves[label].items():
            precision, recall, _ = precision_recall_curve(scores, positive)
            ax.step(np.r_[0, recall], np.r_[1, precision], where="post", label=system)
        if label in operating_points:
            r, p = operating_points[label]
            ax.plot([r], [p], "ko", label="sed @ shipped threshold")
        ax.set_title(label)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_false_alarms(path: Path, counts: dict[str, dict[str, int]], hours: float) -> None:
    """Bar chart of false alarms per negative sub-class; ``counts[system][subclass]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subclasses = sorted({s for per in counts.values() for s in per})
    if not subclasses:
        subclasses = ["(none)"]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(subclasses) + 1.5))
    y = np.arange(len(subclasses))
    height = 0.8 / max(1, len(counts))
    for i, (system, per) in enumerate(counts.items()):
        ax.barh(y + i * height, [per.get(s, 0) for s in subclasses], height=height, label=system)
    ax.set_yticks(y + height * (len(counts) - 1) / 2)
    ax.set_yticklabels(subclasses, fontsize=8)
    ax.set_xlabel(f"false alarms on negative clips ({hours:.2f} h of negative audio)")
    ax.legend()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_negative_margins(path: Path, ratios: dict[str, tuple[float, str]]) -> None:
    """Per negative sub-class, the highest ``score / on-threshold`` of any clip and class
    (``ratios[subclass] = (ratio, label)``): 1 or more is a false alarm; close to 1, a near miss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(ratios, key=lambda k: ratios[k][0])
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.barh(y, [ratios[n][0] for n in names], color="tab:blue")
    ax.axvline(1.0, color="tab:red", linestyle="--", label="threshold (false alarm at or beyond)")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{n[:40]}  [{ratios[n][1]}]" for n in names], fontsize=7)
    ax.set_xlabel("sed: highest score / class threshold on the sub-class's clips")
    ax.set_xlim(0, max(1.1, max((r for r, _ in ratios.values()), default=1.0) * 1.05))
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["plot_false_alarms", "plot_negative_margins", "plot_pr_curves", "provenance", "table"]
