"""Clip-manifest mode of ``sed bench detect``: per-clip decisions, AP, false alarms, confusions.

Each clip is read in blocks, resampled to 16 kHz, padded with :data:`CLIP_LEAD_S` of silence
before and one window of silence after, and streamed through the detector (and YAMNet, on the
same samples); a long "clip" takes no more memory than a short one. A clip is *detected as*
a label when the detector emits at least one event of that label; negative clips (labels the
model does not have) give the false alarms per hour.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sed.bench.report import plot_false_alarms, plot_negative_margins, plot_pr_curves, table
from sed.bench.runner import ScorerSpec, SedRun, SignalChunks, YamnetRun, run_streams, yamnet_detections
from sed.dsp.audio_io import stream_audio
from sed.errors import AudioFormatError, ConfigError
from sed.metrics import average_precision, best_f1, decision_counts
from sed.models import StreamingDetector
from sed.models.train.data import CLIP_LEAD_S, Clip, read_manifest
from sed.models.yamnet_litert import SAMPLE_RATE_HZ, WINDOW_SAMPLES, YamnetScorer
from sed.parallel import Engine

#: Tasks per worker a clip run is cut into: enough for the workers to finish together (the
#: largest clips go first), few enough that each task's round trip does not show (dev split,
#: two workers: 8 clips per task 12.7-14.0 s, 24 per task 11.9-12.3 s).
TASKS_PER_WORKER = 12


@dataclasses.dataclass(frozen=True)
class ClipTask:
    """One clip to stream: an absolute path, the silence around it and the push size, samples."""

    path: str
    lead_samples: int
    tail_samples: int
    chunk_samples: int


@dataclasses.dataclass
class ClipResult:
    run: SedRun | None
    yamnet: YamnetRun | None
    n_signal_samples: int
    error: str | None = None  # the file could not be read: named and skipped


def score_clip(task: ClipTask, *, spec: ScorerSpec) -> ClipResult:
    """Stream one clip through the detectors of ``spec`` (built once per process); a task of the run."""
    detector, yamnet = spec.build()
    signal = SignalChunks(
        stream_audio(task.path, sample_rate_hz=SAMPLE_RATE_HZ),
        lead_samples=task.lead_samples,
        tail_samples=task.tail_samples,
        chunk_samples=task.chunk_samples,
    )
    try:
        run, yrun = run_streams(detector, yamnet, signal, origin_samples=task.lead_samples)
    except AudioFormatError as exc:
        return ClipResult(None, None, 0, error=str(exc))
    return ClipResult(run, yrun, signal.n_signal_samples)


def evaluate_clips(
    manifest: Path,
    split: str | None,
    spec: ScorerSpec,
    engine: Engine,
    *,
    chunk_s: float,
    limit: int | None,
) -> dict[str, Any]:
    """Score every clip of the manifest (each clip one task of ``engine``)."""
    clips = _read_manifest(manifest, split)[:limit]
    if not clips:
        raise ConfigError(f"{manifest}: no rows" + (f" with split_hint={split!r}" if split else ""))
    detector, yamnet = spec.build()
    labels = detector.labels
    lead = int(CLIP_LEAD_S * SAMPLE_RATE_HZ)
    tail = max(detector.metadata.window_samples, WINDOW_SAMPLES)
    chunk = max(1, int(chunk_s * SAMPLE_RATE_HZ))
    root = manifest.parent.resolve()
    tasks = [ClipTask(str(root / clip.path), lead, tail, chunk) for clip in clips]
    results = engine.map(
        score_clip,
        tasks,
        desc="clips",
        shared={"spec": spec},
        per_task=max(1, len(tasks) // (engine.workers * TASKS_PER_WORKER)),
        cost=[_bytes(t.path) for t in tasks],
    )
    files: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    yamnet_runs = []
    cpu = {"sed": 0.0, "yamnet": 0.0}
    audio_s = 0.0
    for clip, result in zip(clips, results, strict=True):
        if result.run is None:
            print(f"skipped: {result.error}", file=sys.stderr)
            skipped.append({"path": clip.path, "error": str(result.error)})
            continue
        run, yrun = result.run, result.yamnet
        audio_s += (lead + result.n_signal_samples + tail) / SAMPLE_RATE_HZ
        cpu["sed"] += run.cpu_s
        entry: dict[str, Any] = {
            "path": clip.path,
            "label": clip.label,
            "source": clip.source,
            "subclass": clip.subclass,
            "duration_s": result.n_signal_samples / SAMPLE_RATE_HZ,
            "sed": {"max_scores": run.max_scores, "detections": [vars(d) for d in run.detections]},
        }
        if yamnet is not None and yrun is not None:
            cpu["yamnet"] += yrun.cpu_s
            yamnet_runs.append(yrun)
            entry["yamnet"] = {
                "max_scores": {
                    label: {
                        name: float(yrun.scores[label][g].max(initial=0.0))
                        for g, name in enumerate(yamnet.group_names[label])
                    }
                    for label in labels
                }
            }
        files.append(entry)
    if not files:
        raise AudioFormatError(
            f"{manifest}: none of its {len(clips)} audio files could be read; first: {skipped[0]['error']}"
        )
    summary = _clip_summary(files, labels, detector, yamnet, yamnet_runs, lead)
    summary["skipped"] = skipped
    summary["speed"] = _speed(cpu, audio_s, yamnet is not None)
    summary["files"] = files
    summary["_text"] = _clip_text(summary, labels)
    return summary


def _bytes(path: str) -> float:
    """A file's size (0 if it cannot be read: the task will name the problem)."""
    try:
        return float(os.stat(path).st_size)
    except OSError:
        return 0.0


def _read_manifest(manifest: Path, split: str | None) -> list[Clip]:
    """The manifest's rows, with an unreadable or undecodable file as one :class:`ConfigError`."""
    if manifest.exists() and not manifest.is_file():
        raise ConfigError(f"{manifest}: a folder; expected a clip manifest CSV (or a folder with --annotations)")
    try:
        return read_manifest(manifest, split=split)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{manifest}: not UTF-8 text (byte {exc.start}); expected a CSV manifest") from None
    except (OSError, csv.Error) as exc:
        raise ConfigError(f"{manifest}: unreadable manifest ({exc})") from None


def _clip_summary(
    files: list[dict[str, Any]],
    labels: tuple[str, ...],
    detector: StreamingDetector,
    yamnet: YamnetScorer | None,
    yamnet_runs: list,
    lead: int,
) -> dict[str, Any]:
    truth = np.array([f["label"] for f in files])
    negative = ~np.isin(truth, labels)
    negative_hours = sum(f["duration_s"] for f, n in zip(files, negative, strict=True) if n) / 3600
    per_class: dict[str, Any] = {}
    false_alarms: dict[str, dict[str, int]] = {"sed": {}, "yamnet": {}}
    confusion: dict[str, dict[str, dict[str, int]]] = {"sed": {}, "yamnet": {}}
    for f in files:
        f["sed"]["detected"] = sorted({d["label"] for d in f["sed"]["detections"]})
        row = f["label"] if f["label"] in labels else f"negative: {f['subclass']}"
        for system in ("sed", "yamnet"):
            confusion[system].setdefault(row, {label: 0 for label in (*labels, "clips")})["clips"] += 1
        for label in f["sed"]["detected"]:
            confusion["sed"][row][label] += 1
        if f["label"] not in labels:
            n_events = len(f["sed"]["detections"])
            if n_events:
                false_alarms["sed"][f["subclass"]] = false_alarms["sed"].get(f["subclass"], 0) + n_events
    for label in labels:
        positive = truth == label
        scores = np.array([f["sed"]["max_scores"][label] for f in files])
        decided = np.array([label in f["sed"]["detected"] for f in files])
        counts = decision_counts(decided, positive)
        n_fa = int(
            sum(
                sum(d["label"] == label for d in f["sed"]["detections"])
                for f, n in zip(files, negative, strict=True)
                if n
            )
        )
        top_f1, top_threshold = best_f1(scores, positive)
        per_class[label] = {
            "sed": {
                "precision": counts.precision,
                "recall": counts.recall,
                "f1": counts.f1,
                "average_precision": average_precision(scores, positive),
                "best_f1": top_f1,
                "best_f1_threshold": top_threshold,
                "threshold": detector.thresholds[label].on,
                "false_alarms": n_fa,
                "false_alarms_per_h": n_fa / negative_hours if negative_hours else None,
                "n_positive": int(positive.sum()),
                "missed": [f["path"] for f, p, d in zip(files, positive, decided, strict=True) if p and not d],
            },
        }
        if yamnet is not None:
            per_class[label]["yamnet"] = _yamnet_class(
                files,
                label,
                positive,
                negative,
                negative_hours,
                yamnet,
                yamnet_runs,
                lead,
                confusion["yamnet"],
                false_alarms["yamnet"],
            )
    if "glass_break" in labels:
        per_class["glass_break"]["sed_by_source"] = _by_source(files, truth, "glass_break", labels)
    n_fa_total = sum(false_alarms["sed"].values())
    return {
        "mode": "clips",
        "model": {
            "path": str(detector._backend.path),
            "version": detector.model_version,
            "thresholds": {k: vars(v) for k, v in detector.thresholds.items()},
        },
        "n_files": len(files),
        "negative_hours": negative_hours,
        "false_alarms_per_h": {"sed": n_fa_total / negative_hours if negative_hours else None},
        "per_class": per_class,
        "confusion": confusion,
        "false_alarm_sources": false_alarms,
    }


def _yamnet_class(files, label, positive, negative, negative_hours, yamnet, runs, lead, confusion, false_alarms):
    """Best group and threshold (tuned on these files), its metrics, and its false alarms."""
    groups = yamnet.group_names[label]
    best = None
    for name in groups:
        scores = np.array([f["yamnet"]["max_scores"][label][name] for f in files])
        f1, threshold = best_f1(scores, positive)
        if best is None or f1 > best["best_f1"]:
            best = {
                "group": name,
                "best_f1": f1,
                "threshold": threshold,
                "average_precision": average_precision(scores, positive),
                "_scores": scores,
            }
    assert best is not None
    decided = best.pop("_scores") >= best["threshold"]
    counts = decision_counts(decided, positive)
    g = groups.index(best["group"])
    n_fa = 0
    for f, run, is_negative, hit in zip(files, runs, negative, decided, strict=True):
        row = f["label"] if not is_negative else f"negative: {f['subclass']}"
        if hit:
            confusion[row][label] += 1
            dets = yamnet_detections(run, label, g, best["threshold"], origin_samples=lead)
            f["yamnet"].setdefault("detections", []).extend(vars(d) for d in dets)
            if is_negative:
                n_fa += len(dets)
                false_alarms[f["subclass"]] = false_alarms.get(f["subclass"], 0) + len(dets)
    best.update(
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        false_alarms=n_fa,
        false_alarms_per_h=n_fa / negative_hours if negative_hours else None,
    )
    return best


def _by_source(files, truth, label, labels) -> dict[str, dict[str, Any]]:
    """Per source of ``label`` clips: recall, and F1 against every clip not of ``label``."""
    others = truth != label
    false_pos = sum(1 for f, o in zip(files, others, strict=True) if o and label in f["sed"]["detected"])
    out = {}
    for source in sorted({f["source"] for f, t in zip(files, truth, strict=True) if t == label}):
        rows = [f for f, t in zip(files, truth, strict=True) if t == label and f["source"] == source]
        tp = sum(label in f["sed"]["detected"] for f in rows)
        out[source] = {
            "clips": len(rows),
            "detected": tp,
            "recall": tp / len(rows),
            "f1": 2 * tp / (2 * tp + false_pos + len(rows) - tp),
            "missed": [f["path"] for f in rows if label not in f["sed"]["detected"]],
        }
    return out


def _speed(cpu: dict[str, float], audio_s: float, with_yamnet: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "audio_s": audio_s,
        "sed_cpu_s": cpu["sed"],
        "sed_cpu_ms_per_audio_s": 1e3 * cpu["sed"] / audio_s if audio_s else None,
        "sed_realtime_factor": audio_s / cpu["sed"] if cpu["sed"] else None,
    }
    if with_yamnet:
        out.update(
            yamnet_cpu_s=cpu["yamnet"],
            yamnet_cpu_ms_per_audio_s=1e3 * cpu["yamnet"] / audio_s,
            yamnet_realtime_factor=audio_s / cpu["yamnet"],
            cost_ratio_yamnet_over_sed=cpu["yamnet"] / cpu["sed"],
        )
    return out


def _clip_text(summary: dict[str, Any], labels: tuple[str, ...]) -> str:
    rows = []
    for label in labels:
        s = summary["per_class"][label]["sed"]
        row = {
            "label": label,
            "thr": s["threshold"],
            "P": s["precision"],
            "R": s["recall"],
            "F1": s["f1"],
            "AP": s["average_precision"],
            "best": s["best_f1"],
            "FA/h": s["false_alarms_per_h"],
        }
        if "yamnet" in summary["per_class"][label]:
            y = summary["per_class"][label]["yamnet"]
            row.update(
                {
                    "Y best-F1": y["best_f1"],
                    "Y AP": y["average_precision"],
                    "Y FA/h": y["false_alarms_per_h"],
                    "ΔF1": s["f1"] - y["best_f1"],
                }
            )
        rows.append(row)
    columns = [("label", "class"), ("thr", "thr"), ("P", "P"), ("R", "R"), ("F1", "F1"), ("AP", "AP"), ("FA/h", "FA/h")]
    columns.append(("best", "best-F1"))
    if any("Y best-F1" in r for r in rows):
        columns += [("Y best-F1", "YAMNet best-F1"), ("Y AP", "YAMNet AP"), ("Y FA/h", "YAMNet FA/h"), ("ΔF1", "ΔF1")]
    speed = summary["speed"]
    lines = [
        f"{summary['n_files']} clips, {summary['negative_hours']:.3f} h negative audio, "
        f"{len(summary['skipped'])} skipped",
        table(rows, columns),
        "P/R/F1/FA/h: sed at its shipped thresholds; best-F1: threshold tuned on these clips (as YAMNet's); "
        "ΔF1 = sed F1 - YAMNet best-F1",
        f"sed false alarms: {_per_hour(summary['false_alarms_per_h']['sed'])}; sources: "
        f"{summary['false_alarm_sources']['sed'] or 'none'}",
        f"sed: {speed['sed_cpu_ms_per_audio_s']:.3f} ms CPU per audio s "
        f"({speed['sed_realtime_factor']:.0f}x real time)",
    ]
    if "yamnet_cpu_s" in speed:
        lines.append(
            f"YAMNet: {speed['yamnet_cpu_ms_per_audio_s']:.3f} ms CPU per audio s; "
            f"sed is {speed['cost_ratio_yamnet_over_sed']:.1f}x cheaper"
        )
    if "sed_by_source" in summary["per_class"].get("glass_break", {}):
        by_source = summary["per_class"]["glass_break"]["sed_by_source"]
        lines.append(
            "glass_break by source: "
            + ", ".join(f"{k} {v['detected']}/{v['clips']} (F1 {v['f1']:.2f})" for k, v in by_source.items())
        )
    lines.append(_confusion_text(summary["confusion"], labels))
    return "\n".join(lines)


def _confusion_text(confusion: dict[str, dict[str, dict[str, int]]], labels: tuple[str, ...]) -> str:
    """Clips detected as each class, per true label / negative sub-class (rows with any hit)."""
    systems = [s for s in ("sed", "yamnet") if any(sum(r.get(k, 0) for k in labels) for r in confusion[s].values())]
    systems = systems or ["sed"]
    rows = []
    for row in sorted(confusion["sed"]):
        entry: dict[str, Any] = {"row": row, "clips": confusion["sed"][row]["clips"]}
        for system in systems:
            for label in labels:
                entry[f"{system}:{label}"] = confusion[system].get(row, {}).get(label, 0)
        if row in labels or any(entry[f"{s}:{k}"] for s in systems for k in labels):
            rows.append(entry)
    columns = [("row", "true label / negative sub-class"), ("clips", "clips")]
    columns += [(f"{s}:{k}", f"{'YAMNet' if s == 'yamnet' else 'sed'} {k}") for s in systems for k in labels]
    return "clips detected as each class (YAMNet at its best-F1 thresholds):\n" + table(rows, columns)


def _per_hour(value: float | None) -> str:
    return "n/a (no negative audio)" if value is None else f"{value:.2f}/h"


def plots(report: dict[str, Any], folder: Path, stem: str) -> list[str]:
    files, labels = report["files"], list(report["per_class"])
    truth = np.array([f["label"] for f in files])
    curves, points = {}, {}
    for label in labels:
        positive = truth == label
        curves[label] = {"sed": (np.array([f["sed"]["max_scores"][label] for f in files]), positive)}
        y = report["per_class"][label].get("yamnet")
        if y is not None:
            curves[label][f"YAMNet ({y['group']})"] = (
                np.array([f["yamnet"]["max_scores"][label][y["group"]] for f in files]),
                positive,
            )
        s = report["per_class"][label]["sed"]
        points[label] = (s["recall"], s["precision"])
    pr_path, fa_path = folder / f"{stem}_pr.png", folder / f"{stem}_false_alarms.png"
    plot_pr_curves(pr_path, curves, points)
    counts = {"sed": report["false_alarm_sources"]["sed"]}
    if any("yamnet" in report["per_class"][label] for label in labels):
        counts["YAMNet (best-F1 thresholds)"] = report["false_alarm_sources"]["yamnet"]
    plot_false_alarms(fa_path, counts, report["negative_hours"])
    margin_path = folder / f"{stem}_negative_margins.png"
    thresholds = {label: report["model"]["thresholds"][label]["on"] for label in labels}
    ratios: dict[str, tuple[float, str]] = {}
    for f in files:
        if f["label"] in labels:
            continue
        ratio, label = max((f["sed"]["max_scores"][k] / thresholds[k], k) for k in labels)
        if ratio > ratios.get(f["subclass"], (-1.0, ""))[0]:
            ratios[f["subclass"]] = (ratio, label)
    if ratios:
        plot_negative_margins(margin_path, ratios)
        return [str(pr_path), str(fa_path), str(margin_path)]
    return [str(pr_path), str(fa_path)]


__all__ = ["ClipResult", "ClipTask", "evaluate_clips", "plots", "score_clip"]
