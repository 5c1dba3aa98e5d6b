"""Long recordings with DCASE annotations: event-based scoring for ``sed bench detect DIR``.

Each recording is read and scored block by block (:mod:`sed.bench.runner`): an hour of
96 kHz six-channel audio takes no more memory than a minute of it. Recordings longer than
an hour are cut into pieces (:mod:`sed.bench.pieces`) that run as separate tasks and
join into what one run over the file gives.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sed.bench.pieces import PIECE_S, Piece, PieceResult, join, plan_pieces, score_piece
from sed.bench.report import table
from sed.bench.runner import ScorerSpec, YamnetRun, yamnet_detections
from sed.errors import AudioFormatError, ConfigError
from sed.metrics import Event, EventMetrics
from sed.models.yamnet_litert import SAMPLE_RATE_HZ, WINDOW_SAMPLES, YamnetScorer
from sed.parallel import Engine

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
COLLAR_S = 0.5
#: Thresholds tried for YAMNet's event-based best F1 (tuned on the evaluated data).
YAMNET_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def read_annotations(path: Path) -> dict[str, list[Event]]:
    """DCASE TSV ``file<TAB>onset<TAB>offset<TAB>label`` (seconds); a row with only a file
    name marks a file without events; a header row is skipped. Keys are file names."""
    if not path.is_file():
        raise ConfigError(f"{path}: annotation file not found" if not path.exists() else f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); expected a DCASE TSV") from None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable annotation file ({exc.strerror})") from None
    out: dict[str, list[Event]] = {}
    try:
        rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a TSV ({exc})") from None
    for line_no, row in enumerate(rows, start=1):
        if not row or not row[0].strip():
            continue
        name = Path(row[0].strip()).name
        out.setdefault(name, [])
        if len(row) < 4 or not row[3].strip():
            continue
        try:
            onset, offset = float(row[1]), float(row[2])
        except ValueError:
            if line_no == 1:
                out.pop(name, None)
                continue  # header
            raise ConfigError(f"{path}:{line_no}: onset/offset {row[1:3]} are not numbers") from None
        if not (math.isfinite(onset) and math.isfinite(offset) and 0 <= onset <= offset):
            raise ConfigError(f"{path}:{line_no}: onset {onset}, offset {offset}; expected 0 <= onset <= offset, s")
        out[name].append(Event(name, onset, offset, row[3].strip()))
    return out


def evaluate(
    folder: Path,
    annotations: Path,
    spec: ScorerSpec,
    engine: Engine,
    *,
    chunk_s: float,
    limit: int | None,
    piece_s: float = PIECE_S,
) -> dict[str, Any]:
    """Score every annotated recording of ``folder``; long ones are cut into pieces, each a task."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of recordings")
    truth = read_annotations(annotations)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.name in truth)[:limit]
    if not paths:
        raise ConfigError(f"{folder}: no audio file listed in {annotations}")
    detector, yamnet = spec.build()
    labels = detector.labels
    chunk = max(1, int(chunk_s * SAMPLE_RATE_HZ))
    tail = max(detector.metadata.window_samples, WINDOW_SAMPLES)
    skipped: list[dict[str, str]] = []
    tasks: list[Piece] = []
    for path in paths:
        try:
            tasks += plan_pieces(str(path.resolve()), detector, tail_samples=tail, chunk_samples=chunk, piece_s=piece_s)
        except AudioFormatError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            skipped.append({"path": str(path), "error": str(exc)})
    results = engine.map(
        score_piece,
        tasks,
        desc="pieces of recordings",
        shared={"spec": spec},
        cost=[piece.n_owned_samples for piece in tasks],
    )
    by_file: dict[str, list[PieceResult]] = {}
    for result in results:
        by_file.setdefault(result.path, []).append(result)
    metrics = EventMetrics(labels, collar_s=COLLAR_S)
    files, yamnet_runs = [], []
    cpu = {"sed": 0.0, "yamnet": 0.0}
    audio_s = total_s = 0.0
    for path in paths:
        if str(path.resolve()) not in by_file:
            continue  # skipped when planned
        run = join(by_file[str(path.resolve())], labels)
        if "error" in run:
            print(f"skipped: {run['error']}", file=sys.stderr)
            skipped.append({"path": str(path), "error": run["error"]})
            continue
        duration_s = run["n_signal_samples"] / SAMPLE_RATE_HZ
        total_s += duration_s
        audio_s += (run["n_signal_samples"] + tail) / SAMPLE_RATE_HZ
        cpu["sed"] += run["sed_cpu_s"]
        estimated = [Event(path.name, d.onset_s, d.offset_s, d.label) for d in run["detections"]]
        metrics.add_file(truth[path.name], estimated)
        entry: dict[str, Any] = {
            "path": path.name,
            "duration_s": duration_s,
            "pieces": len(by_file[str(path.resolve())]),
            "reference": [vars(e) for e in truth[path.name]],
            "sed": {"max_scores": run["max_scores"], "detections": [vars(d) for d in run["detections"]]},
        }
        if run["yamnet_scores"] is not None:
            cpu["yamnet"] += run["yamnet_cpu_s"]
            yamnet_runs.append(YamnetRun(run["yamnet_scores"], run["yamnet_cpu_s"]))
        files.append(entry)
    if not files:
        raise AudioFormatError(
            f"{folder}: none of its {len(paths)} annotated recordings could be read; first: {skipped[0]['error']}"
        )
    hours = total_s / 3600
    per_class = {label: {"sed": _counts_dict(metrics, label, hours)} for label in labels}
    if yamnet is not None:
        for label in labels:
            per_class[label]["yamnet"] = _yamnet_best(files, yamnet_runs, yamnet, label, hours)
    speed = {
        "audio_s": audio_s,
        "sed_cpu_ms_per_audio_s": 1e3 * cpu["sed"] / audio_s,
        "sed_realtime_factor": audio_s / cpu["sed"] if cpu["sed"] else None,
    }
    if yamnet is not None:
        speed.update(
            yamnet_cpu_ms_per_audio_s=1e3 * cpu["yamnet"] / audio_s,
            cost_ratio_yamnet_over_sed=cpu["yamnet"] / cpu["sed"],
        )
    insertions = metrics.overall.n_sys - metrics.overall.n_tp
    report = {
        "mode": "recordings",
        "collar_s": COLLAR_S,
        "n_files": len(files),
        "hours": hours,
        "model": {
            "version": detector.model_version,
            "thresholds": {k: vars(v) for k, v in detector.thresholds.items()},
        },
        "overall": {
            "f1": metrics.overall.f1,
            "error_rate": metrics.overall_error_rate,
            "substitutions": metrics.n_substitutions,
            "false_alarms_per_h": insertions / hours if hours else None,
        },
        "per_class": per_class,
        "speed": speed,
        "skipped": skipped,
        "files": files,
    }
    report["_text"] = _text(report, labels)
    return report


def _counts_dict(metrics: EventMetrics, label: str, hours: float) -> dict[str, Any]:
    c = metrics.class_wise[label]
    return {
        "event_f1": c.f1,
        "event_precision": c.precision,
        "event_recall": c.recall,
        "event_error_rate": c.error_rate,
        "n_ref": c.n_ref,
        "n_sys": c.n_sys,
        "n_tp": c.n_tp,
        "false_alarms_per_h": (c.n_sys - c.n_tp) / hours if hours else None,
    }


def _yamnet_best(files, runs, yamnet: YamnetScorer, label: str, hours: float) -> dict[str, Any]:
    """Best event-based F1 over YAMNet's class groups and a threshold grid (optimistic)."""
    best: dict[str, Any] | None = None
    for g, name in enumerate(yamnet.group_names[label]):
        for threshold in YAMNET_GRID:
            m = EventMetrics((label,), collar_s=COLLAR_S)
            for f, run in zip(files, runs, strict=True):
                ref = [
                    Event(f["path"], e["onset_s"], e["offset_s"], e["label"])
                    for e in f["reference"]
                    if e["label"] == label
                ]
                est = [
                    Event(f["path"], d.onset_s, d.offset_s, label)
                    for d in yamnet_detections(run, label, g, float(threshold), origin_samples=0)
                ]
                m.add_file(ref, est)
            entry = {"group": name, "threshold": float(threshold), **_counts_dict(m, label, hours)}
            if best is None or entry["event_f1"] > best["event_f1"]:
                best = entry
    assert best is not None
    return best


def _text(report: dict[str, Any], labels: tuple[str, ...]) -> str:
    rows = []
    for label in labels:
        s = report["per_class"][label]["sed"]
        row = {
            "label": label,
            "n": s["n_ref"],
            "F1": s["event_f1"],
            "P": s["event_precision"],
            "R": s["event_recall"],
            "ER": s["event_error_rate"],
            "FA/h": s["false_alarms_per_h"],
        }
        y = report["per_class"][label].get("yamnet")
        if y:
            row.update({"Y F1": y["event_f1"], "Y ER": y["event_error_rate"], "ΔF1": s["event_f1"] - y["event_f1"]})
        rows.append(row)
    columns = [
        ("label", "class"),
        ("n", "events"),
        ("P", "P"),
        ("R", "R"),
        ("F1", "event F1"),
        ("ER", "ER"),
        ("FA/h", "FA/h"),
    ]
    if any("Y F1" in r for r in rows):
        columns += [("Y F1", "YAMNet best event F1"), ("Y ER", "YAMNet ER"), ("ΔF1", "ΔF1")]
    o, sp = report["overall"], report["speed"]
    lines = [
        f"{report['n_files']} recordings, {report['hours']:.3f} h, onset collar {COLLAR_S} s",
        table(rows, columns),
        f"overall: event F1 {o['f1']:.3f}, ER {o['error_rate']:.3f}, false alarms {o['false_alarms_per_h']:.2f}/h",
        f"sed: {sp['sed_cpu_ms_per_audio_s']:.3f} ms CPU per audio s",
    ]
    if "cost_ratio_yamnet_over_sed" in sp:
        lines.append(
            f"YAMNet: {sp['yamnet_cpu_ms_per_audio_s']:.3f} ms CPU per audio s; "
            f"sed is {sp['cost_ratio_yamnet_over_sed']:.1f}x cheaper"
        )
    return "\n".join(lines)


def plots(report: dict[str, Any], folder: Path, stem: str) -> list[str]:
    """Bar chart of event F1 per class, sed vs YAMNet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(report["per_class"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, [report["per_class"][k]["sed"]["event_f1"] for k in labels], 0.4, label="sed")
    if all("yamnet" in report["per_class"][k] for k in labels):
        ax.bar(x + 0.2, [report["per_class"][k]["yamnet"]["event_f1"] for k in labels], 0.4, label="YAMNet (best)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_ylabel(f"event-based F1 (onset collar {COLLAR_S} s)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    path = folder / f"{stem}_event_f1.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path)]


__all__ = ["evaluate", "plots", "read_annotations"]
