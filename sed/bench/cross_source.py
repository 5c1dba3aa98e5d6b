"""Leave-one-source-out evaluation: how the detector does on sources it has never heard.

For each source family (:func:`sed.models.train.head.source_family`), the gate and head are
fitted on the ``train`` split of every *other* family (:func:`sed.models.train.head.fit`),
exported as a detector file, and every clip of the held-out family (both splits) is
streamed through :class:`~sed.models.StreamingDetector` — the sensor's path — with YAMNet
(LiteRT, always on) on the same samples. Window scores are recorded, so thresholds can be
chosen afterwards on these held-out scores (:func:`choose_thresholds`) and events replayed
with the same :class:`~sed.models.events.EventTracker` the detector uses.

Figures weight every source family equally (an evaluator with other sources would): a
class's recall is the mean over the families that have it, and F1 counts each clip with
weight ``1 / clips of its family`` among the positives and among the rest.
"""

from __future__ import annotations

import collections
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sed.bench.runner import SignalChunks, run_streams
from sed.dsp.audio_io import stream_audio
from sed.errors import ConfigError
from sed.models import StreamingDetector
from sed.models.events import EventTracker
from sed.models.metadata import ClassThresholds
from sed.models.train.data import CLIP_LEAD_S, Clip
from sed.models.train.features import WindowFeatures
from sed.models.train.head import LABELS, HeadConfig, export, fit, source_family
from sed.models.yamnet_litert import CLASS_GROUPS, SAMPLE_RATE_HZ, YamnetScorer
from sed.parallel import Engine

#: ``off`` as a fraction of ``on``.
OFF_FRACTION = 0.8


@dataclasses.dataclass
class ClipOutcome:
    """One held-out clip: its window scores under the fold that held its family out."""

    index: int
    family: str
    label: str
    subclass: str
    duration_s: float
    scores: np.ndarray  # (n_labels, n_windows)
    yamnet_max: dict[str, dict[str, float]]  # label -> group -> max window score
    n_windows: int
    n_woken: int


def families(clips: list[Clip]) -> list[str]:
    return sorted({source_family(c) for c in clips})


def subset(clips: list[Clip], per_cell: int) -> list[Clip]:
    """At most ``per_cell`` clips of each (family, label, split): a small, complete copy for smoke runs."""
    taken: collections.Counter = collections.Counter()
    kept = []
    for clip in clips:
        cell = (source_family(clip), clip.label, clip.split)
        if taken[cell] < per_cell:
            taken[cell] += 1
            kept.append(clip)
    return kept


@dataclasses.dataclass(frozen=True)
class FoldData:
    """What every fold shares (sent to each worker once)."""

    root: Path
    clips: list[Clip]
    features: WindowFeatures
    config: HeadConfig
    extra: np.ndarray  # indices of clips added to every fold's training set
    with_yamnet: bool


def run_folds(
    root: Path,
    clips: list[Clip],
    features: WindowFeatures,
    config: HeadConfig,
    *,
    extra_train: np.ndarray | None = None,
    only: list[str] | None = None,
    with_yamnet: bool = True,
    engine: Engine | None = None,
) -> list[ClipOutcome]:
    """Fit one detector per held-out family and stream that family's clips through it.

    ``extra_train``: indices of clips (e.g. an operator corpus) added to every fold's training
    set and never held out. ``only``: evaluate these families only (smoke runs). Each fold is
    a task of ``engine`` (default: in this process); the outcomes are in the order of the
    families whatever ran them.
    """
    extra = np.asarray(extra_train if extra_train is not None else [], np.int64)
    is_extra = set(extra.tolist())
    own = [c for i, c in enumerate(clips) if i not in is_extra]
    held_out = [f for f in families(own) if only is None or f in only]
    unknown = sorted(set(only or ()) - set(families(own)))
    if unknown:
        raise ConfigError(f"source families {unknown} not in the data; it has {families(own)}")
    data = FoldData(root, clips, features, config, extra, with_yamnet)
    if engine is None:
        with Engine(workers=1) as sequential:
            per_fold = sequential.map(run_fold, held_out, desc="folds", shared={"data": data})
    else:
        # a fold streams its family's clips: the big families go first, so none starts last alone
        size = collections.Counter(source_family(c) for c in own)
        per_fold = engine.map(run_fold, held_out, desc="folds", shared={"data": data}, cost=[size[f] for f in held_out])
    return [outcome for fold in per_fold for outcome in fold]


def run_fold(family: str, *, data: FoldData) -> list[ClipOutcome]:
    """Fit on every family but ``family`` and stream ``family``'s clips: one task of :func:`run_folds`."""
    family_of = np.array([source_family(c) for c in data.clips])
    is_train = np.array([c.split == "train" for c in data.clips])
    train = np.union1d(np.flatnonzero((family_of != family) & is_train), data.extra)
    fitted = fit(data.features, data.clips, train, data.config)
    yamnet = YamnetScorer() if data.with_yamnet else None
    is_extra = set(data.extra.tolist())
    with tempfile.TemporaryDirectory(prefix="sed-cross-source-") as tmp:
        path = Path(tmp) / f"fold-{family}.onnx"
        placeholder = {label: ClassThresholds(on=0.5, off=0.4) for label in LABELS}
        export(fitted, path, version=f"fold-{family}", thresholds=placeholder, extra={})
        detector = StreamingDetector.from_file(path)
        test = [i for i in np.flatnonzero(family_of == family) if i not in is_extra]
        return [_stream_clip(data.root, data.clips[i], i, family, detector, yamnet) for i in test]


def _stream_clip(
    root: Path, clip: Clip, index: int, family: str, detector: StreamingDetector, yamnet: YamnetScorer | None
) -> ClipOutcome:
    blocks: list[np.ndarray] = []
    detector.on_scores = lambda s: blocks.append(s[0])
    lead = int(CLIP_LEAD_S * SAMPLE_RATE_HZ)
    signal = SignalChunks(
        stream_audio(root / clip.path, sample_rate_hz=SAMPLE_RATE_HZ),
        lead_samples=lead,
        tail_samples=detector.metadata.window_samples,
        chunk_samples=SAMPLE_RATE_HZ,
    )
    _, yrun = run_streams(detector, yamnet, signal, origin_samples=lead)  # resets the detector first
    n_windows, n_woken = detector.wake_counts
    scores = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(LABELS), 0), np.float32)
    yamnet_max = {}
    if yrun is not None and yamnet is not None:
        yamnet_max = {
            label: {
                name: float(yrun.scores[label][g].max(initial=0.0)) for g, name in enumerate(yamnet.group_names[label])
            }
            for label in LABELS
        }
    return ClipOutcome(
        index=index,
        family=family,
        label=clip.label,
        subclass=clip.subclass,
        duration_s=signal.n_signal_samples / SAMPLE_RATE_HZ,
        scores=scores,
        yamnet_max=yamnet_max,
        n_windows=n_windows,
        n_woken=n_woken,
    )


def count_events(scores: np.ndarray, thresholds: dict[str, ClassThresholds]) -> np.ndarray:
    """Events per class that the detector's hysteresis makes of ``(n_labels, n_windows)`` scores."""
    tracker = EventTracker([thresholds[label] for label in LABELS], n_streams=1)
    changes = tracker.push(scores[None, :, :]) + tracker.close()
    counts = np.zeros(len(LABELS), np.int64)
    for change in changes:
        if change.last_index < 0:  # a confirmation (each event is confirmed once)
            counts[change.class_index] += 1
    return counts


def _weights(outcomes: list[ClipOutcome], positive: np.ndarray) -> np.ndarray:
    """Each family weighs the same within the positives and within the rest."""
    weights = np.zeros(len(outcomes))
    fam = np.array([o.family for o in outcomes])
    for part in (positive, ~positive):
        count = collections.Counter(fam[part])
        for family, n in count.items():
            weights[part & (fam == family)] = part.sum() / len(count) / n
    return weights


def weighted_f1(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray, threshold: float) -> float:
    detected = scores >= threshold
    tp = weights[detected & positive].sum()
    fp = weights[detected & ~positive].sum()
    fn = weights[~detected & positive].sum()
    return float(2 * tp / max(2 * tp + fp + fn, 1e-12))


def best_weighted_f1(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    candidates = np.unique(scores[positive])
    if not len(candidates):
        return 0.0, 1.0
    values = [weighted_f1(scores, positive, weights, t) for t in candidates]
    k = int(np.argmax(values))
    return values[k], float(candidates[k])


def choose_thresholds(outcomes: list[ClipOutcome]) -> dict[str, ClassThresholds]:
    """Per class, the ``on`` threshold of best family-weighted F1 on held-out clips."""
    chosen = {}
    for c, label in enumerate(LABELS):
        positive = np.array([o.label == label for o in outcomes])
        scores = np.array([o.scores[c].max(initial=0.0) for o in outcomes])
        _, threshold = best_weighted_f1(scores, positive, _weights(outcomes, positive))
        on = float(np.clip(threshold, 0.05, 0.99))
        chosen[label] = ClassThresholds(on=on, off=OFF_FRACTION * on, min_hops=1)
    return chosen


def summarise(outcomes: list[ClipOutcome], thresholds: dict[str, ClassThresholds]) -> dict[str, Any]:
    """Per class and per family figures of sed (at ``thresholds``) and of YAMNet (tuned here)."""
    events = np.array([count_events(o.scores, thresholds) for o in outcomes])
    fam = np.array([o.family for o in outcomes])
    negative = np.array([o.label not in LABELS for o in outcomes])
    hours = np.array([o.duration_s for o in outcomes]) / 3600
    per_class: dict[str, Any] = {}
    for c, label in enumerate(LABELS):
        positive = np.array([o.label == label for o in outcomes])
        weights = _weights(outcomes, positive)
        detected = events[:, c] > 0
        recall = {f: float(detected[positive & (fam == f)].mean()) for f in sorted(set(fam[positive]))}
        entry: dict[str, Any] = {
            "threshold": thresholds[label].on,
            "recall_by_family": recall,
            "recall_mean_over_families": float(np.mean(list(recall.values()))) if recall else None,
            "f1_family_weighted": weighted_f1(detected.astype(float), positive, weights, 0.5),
            "f1_pooled": weighted_f1(detected.astype(float), positive, np.ones(len(outcomes)), 0.5),
            "false_alarms_on_negatives": int(events[negative, c].sum()),
        }
        if outcomes and outcomes[0].yamnet_max:
            groups = {}
            for name in CLASS_GROUPS[label]:
                scores = np.array([o.yamnet_max[label][name] for o in outcomes])
                f1, threshold = best_weighted_f1(scores, positive, weights)
                groups[name] = {"f1_family_weighted": f1, "threshold": threshold}
            best = max(groups, key=lambda g: groups[g]["f1_family_weighted"])
            scores = np.array([o.yamnet_max[label][best] for o in outcomes])
            yamnet_hit = scores >= groups[best]["threshold"]
            entry["yamnet"] = {
                "best_group": best,
                **groups[best],
                "recall_by_family": {f: float(yamnet_hit[positive & (fam == f)].mean()) for f in recall},
                "groups": groups,
            }
        per_class[label] = entry
    false_alarms = {
        f: {
            "events": int(events[negative & (fam == f)].sum()),
            "hours": float(hours[negative & (fam == f)].sum()),
            "per_hour": float(events[negative & (fam == f)].sum() / max(hours[negative & (fam == f)].sum(), 1e-9)),
        }
        for f in sorted(set(fam[negative]))
    }
    by_subclass = collections.Counter()
    for o, e in zip(outcomes, events, strict=True):
        if o.label not in LABELS and e.sum():
            by_subclass[f"{o.family}: {o.subclass}"] += int(e.sum())
    woken = sum(o.n_woken for o in outcomes)
    windows = sum(o.n_windows for o in outcomes)
    street = [o for o in outcomes if o.family == "urbansound8k" and o.label not in LABELS]
    return {
        "per_class": per_class,
        "false_alarms_by_family": false_alarms,
        "false_alarms_per_h": float(events[negative].sum() / max(hours[negative].sum(), 1e-9)),
        "negative_hours": float(hours[negative].sum()),
        "false_alarm_sources": dict(by_subclass.most_common()),
        "wake_rate": {
            "all_clips": woken / max(windows, 1),
            "street_negatives": sum(o.n_woken for o in street) / max(sum(o.n_windows for o in street), 1),
        },
        "n_clips": len(outcomes),
    }


def report_text(summary: dict[str, Any]) -> str:
    """The figures as a plain-text table (held-out families, each weighted equally)."""
    lines = ["class         thr    recall  F1(fam)  YAMNet F1  recall by held-out family"]
    for label, e in summary["per_class"].items():
        yamnet = e.get("yamnet", {}).get("f1_family_weighted")
        recall = e["recall_mean_over_families"]
        by_family = ", ".join(f"{f} {r:.2f}" for f, r in e["recall_by_family"].items())
        lines.append(
            f"{label:<12} {e['threshold']:5.3f}  {recall if recall is not None else float('nan'):6.3f}  "
            f"{e['f1_family_weighted']:7.3f}  {yamnet if yamnet is not None else float('nan'):9.3f}  {by_family}"
        )
    lines.append(
        f"false alarms: {summary['false_alarms_per_h']:.2f}/h over {summary['negative_hours']:.2f} h of negatives"
    )
    lines.append(
        "  by family: " + ", ".join(f"{f} {v['per_hour']:.1f}/h" for f, v in summary["false_alarms_by_family"].items())
    )
    wake = summary["wake_rate"]
    lines.append(
        f"gate wake rate: {wake['all_clips']:.1%} of windows, {wake['street_negatives']:.1%} on street negatives"
    )
    return "\n".join(lines)


__all__ = [
    "ClipOutcome",
    "choose_thresholds",
    "count_events",
    "families",
    "report_text",
    "run_folds",
    "subset",
    "summarise",
]
