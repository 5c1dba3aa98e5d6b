"""Run detectors over one signal through their streaming paths, timing only the pipeline.

Both systems see exactly the same samples: the file resampled to 16 kHz, with
``lead_s`` of silence before it and ``tail_samples`` of silence after it (so short clips
are scored at every window position, as a continuous stream would see them).

A file is never held whole: :func:`~sed.dsp.audio_io.stream_audio` reads it in blocks,
:class:`SignalChunks` pads and re-cuts them into the push size, and :func:`run_streams`
pushes each chunk through both detectors, so memory does not grow with the file's length.
Re-cutting keeps the pushes the same whatever the file's blocks were, so a file streamed in
blocks is scored exactly as the whole file cut into ``chunk_samples`` pieces (tested).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterable, Iterator

import numpy as np

from sed.models import StreamingDetector
from sed.models.events import EventTracker
from sed.models.metadata import ClassThresholds
from sed.models.yamnet_litert import HOP_SAMPLES, WINDOW_SAMPLES, YamnetScorer


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
    """The detectors of a run, as plain data a worker process can rebuild them from.

    Parameters
    ----------
    model_path : str, optional
        ONNX detector file (default: the shipped one).
    thresholds : tuple of (label, on) pairs
        Overrides of the model's ``on`` thresholds.
    yamnet : bool
        Also stream YAMNet (the baseline) on the same samples.
    """

    model_path: str | None = None
    thresholds: tuple[tuple[str, float], ...] = ()
    yamnet: bool = False

    def build(self) -> tuple[StreamingDetector, YamnetScorer | None]:
        """The detector (and YAMNet), built once per process and reused by every task in it."""
        return _build(self)


@functools.lru_cache(maxsize=4)
def _build(spec: ScorerSpec) -> tuple[StreamingDetector, YamnetScorer | None]:
    from pathlib import Path

    detector = StreamingDetector.from_file(
        Path(spec.model_path) if spec.model_path else None, thresholds=dict(spec.thresholds) or None
    )
    return detector, (YamnetScorer() if spec.yamnet else None)


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


class SignalChunks:
    """``[zeros(lead), *blocks, zeros(tail)]`` as consecutive chunks of ``chunk_samples``.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n,), dtype=float32]
        The signal in pieces of any length (e.g. :func:`~sed.dsp.audio_io.stream_audio`).
    lead_samples, tail_samples : int >= 0
        Silence before and after the signal.
    chunk_samples : int > 0
        Length of every chunk but the last, which may be shorter.

    Attributes
    ----------
    n_signal_samples : int
        Samples taken from ``blocks`` so far (the signal's length once iterated).
    """

    def __init__(
        self, blocks: Iterable[np.ndarray], *, lead_samples: int, tail_samples: int, chunk_samples: int
    ) -> None:
        if chunk_samples <= 0:
            raise ValueError(f"chunk_samples={chunk_samples}; expected > 0")
        self._blocks = blocks
        self._lead, self._tail, self._chunk = lead_samples, tail_samples, chunk_samples
        self.n_signal_samples = 0

    def _pieces(self) -> Iterator[np.ndarray]:
        yield np.zeros(self._lead, np.float32)
        for block in self._blocks:
            self.n_signal_samples += len(block)
            yield np.asarray(block, dtype=np.float32)
        yield np.zeros(self._tail, np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        n_pending = 0
        for piece in self._pieces():
            pending.append(piece)
            n_pending += len(piece)
            if n_pending < self._chunk:
                continue
            joined = np.concatenate(pending)
            n_whole = len(joined) - len(joined) % self._chunk
            for start in range(0, n_whole, self._chunk):
                yield joined[start : start + self._chunk]
            pending, n_pending = [joined[n_whole:]], len(joined) - n_whole
        if n_pending:
            yield np.concatenate(pending)


def chunks_of(audio: np.ndarray, *, chunk_samples: int) -> Iterator[np.ndarray]:
    """A whole 1-D signal cut into consecutive ``chunk_samples`` pieces (the last shorter)."""
    for start in range(0, len(audio), chunk_samples):
        yield audio[start : start + chunk_samples]


def run_streams(
    detector: StreamingDetector,
    yamnet: YamnetScorer | None,
    chunks: Iterable[np.ndarray],
    *,
    origin_samples: int,
) -> tuple[SedRun, YamnetRun | None]:
    """Push each chunk (1-D, 16 kHz) through ``detector`` and, when given, ``yamnet``.

    Times are seconds after ``origin_samples``. CPU time counts the push calls only (the
    reading and resampling of the file is not the detectors' cost).

    Raises
    ------
    AudioFormatError
        From ``chunks`` (a file unreadable part-way); both detectors are reset at the next run.
    """
    detector.reset()
    if yamnet is not None:
        yamnet.reset()
    events, finished = [], []
    parts: dict[str, list[np.ndarray]] = {}
    sed_cpu_s = yamnet_cpu_s = 0.0
    for chunk in chunks:
        started = time.process_time()
        events += detector.push(chunk[None, :])
        finished += detector.pop_finished()
        sed_cpu_s += time.process_time() - started
        if yamnet is not None:
            started = time.process_time()
            for label, scores in yamnet.push(chunk[None, :]).items():
                parts.setdefault(label, []).append(scores[0])
            yamnet_cpu_s += time.process_time() - started
    started = time.process_time()
    detector.finish()
    finished += detector.pop_finished()
    sed_cpu_s += time.process_time() - started
    assert len(finished) == len(events), "every confirmed event must finish"
    rate = detector.sample_rate_hz
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
    sed_run = SedRun(detections, {label: float(maxima[k]) for k, label in enumerate(detector.labels)}, sed_cpu_s)
    if yamnet is None:
        return sed_run, None
    return sed_run, YamnetRun({label: np.concatenate(p, axis=1) for label, p in parts.items()}, yamnet_cpu_s)


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


__all__ = [
    "Detection",
    "ScorerSpec",
    "SedRun",
    "SignalChunks",
    "YamnetRun",
    "chunks_of",
    "run_streams",
    "yamnet_detections",
]
