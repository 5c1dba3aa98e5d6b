"""Run detectors over one signal through their streaming paths, timing only the pipeline.

Both systems see exactly the same samples: the file resampled to 16 kHz, with
``lead_s`` of silence before it and ``tail_samples`` of silence after it (so short clips
are scored at every window position, as a continuous stream would see them).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from sed.bench.yamnet import HOP_SAMPLES, WINDOW_SAMPLES, YamnetScorer
from sed.models import StreamingDetector
from sed.models.events import EventTracker
from sed.models.metadata import ClassThresholds


@dataclasses.dataclass
class Detection:
    onset_s: float
    offset_s: float
    label: str
    score: float
    search_start_s: float | None = None
    search_stop_s: float | None = None


@dataclasses.dataclass
class SedRun:
    detections: list[Detection]
    max_scores: dict[str, float]
    cpu_s: float


@dataclasses.dataclass
class YamnetRun:
    #: label -> (n_groups, n_windows) window scores
    scores: dict[str, np.ndarray]
    cpu_s: float


def pad(audio: np.ndarray, *, lead_samples: int, tail_samples: int) -> np.ndarray:
    """``[zeros(lead), audio, zeros(tail)]`` as float32."""
    return np.concatenate(
        [np.zeros(lead_samples, np.float32), audio.astype(np.float32), np.zeros(tail_samples, np.float32)]
    )


def run_sed(detector: StreamingDetector, audio: np.ndarray, *, chunk_samples: int, origin_samples: int) -> SedRun:
    """Push ``audio`` (1-D, detector rate) in chunks; times are seconds after ``origin_samples``."""
    detector.reset()
    rate = detector.sample_rate_hz
    events, finished = [], []
    started = time.process_time()
    for start in range(0, len(audio), chunk_samples):
        events += detector.push(audio[None, start : start + chunk_samples])
        finished += detector.pop_finished()
    detector.finish()
    finished += detector.pop_finished()
    cpu_s = time.process_time() - started
    assert len(finished) == len(events), "every confirmed event must finish"
    detections = [
        Detection(
            onset_s=(ev.onset_sample - origin_samples) / rate,
            offset_s=(ev.offset_sample - origin_samples) / rate,  # type: ignore[operator]
            label=ev.label,
            score=ev.score,
            search_start_s=(ev.search_start_sample - origin_samples) / rate,
            search_stop_s=(ev.search_stop_sample - origin_samples) / rate,
        )
        for ev in finished
    ]
    maxima = detector.max_scores[0]
    return SedRun(detections, {label: float(maxima[k]) for k, label in enumerate(detector.labels)}, cpu_s)


def run_yamnet(scorer: YamnetScorer, audio: np.ndarray, *, chunk_samples: int) -> YamnetRun:
    """Push 16 kHz ``audio`` (1-D) through YAMNet in chunks; keep every window's group scores."""
    scorer.reset()
    parts: dict[str, list[np.ndarray]] = {}
    started = time.process_time()
    for start in range(0, len(audio), chunk_samples):
        for label, scores in scorer.push(audio[None, start : start + chunk_samples]).items():
            parts.setdefault(label, []).append(scores[0])
    cpu_s = time.process_time() - started
    return YamnetRun({label: np.concatenate(p, axis=1) for label, p in parts.items()}, cpu_s)


def yamnet_detections(
    run: YamnetRun, label: str, group: int, threshold: float, *, origin_samples: int, rate_hz: int = 16000
) -> list[Detection]:
    """YAMNet events of one label/group at ``threshold`` (same hysteresis code as ours, off = on);
    onset = centre of the first window above threshold."""
    tracker = EventTracker([ClassThresholds(on=threshold, off=threshold)], n_streams=1)
    scores = run.scores[label][group][None, None, :].astype(np.float32)
    finished = [ev for ev in tracker.push(scores) if ev.last_index >= 0] + tracker.close()
    out = []
    for ev in finished:
        onset = ev.first_index * HOP_SAMPLES + WINDOW_SAMPLES // 2 - origin_samples
        offset = ev.last_index * HOP_SAMPLES + WINDOW_SAMPLES - origin_samples
        out.append(Detection(onset_s=onset / rate_hz, offset_s=offset / rate_hz, label=label, score=ev.peak_score))
    return out


__all__ = ["Detection", "SedRun", "YamnetRun", "pad", "run_sed", "run_yamnet", "yamnet_detections"]
