"""The streaming detector: audio blocks in, confirmed events out.

One pipeline for the sensor and for ``sed bench``: :class:`StreamingDetector` runs the
streaming log-mel front end, scores every complete window with the ONNX model (all
windows completed by a push, for all streams, in one call) and turns scores into events
with per-class hysteresis (:mod:`sed.models.events`).

Timing conventions (absolute sample indices since :meth:`StreamingDetector.reset`):

- score ``k`` looks at samples ``[k * hop_samples, k * hop_samples + window_samples)``;
- an event is *emitted once*, by the :meth:`~StreamingDetector.push` that completes the
  window confirming it, with a search span ``[search_start_sample, search_stop_sample)``:
  the *rise window* — where the unbroken run of scores above a tenth of ``on`` that led to
  the event began, i.e. where the sound entered the window (often the first window above
  ``on``; earlier when scores dip between the shots of a burst) — widened by 0.32 s to
  the left and cut to 1.5 s (1.47 s for the shipped model); ``onset_sample`` is the
  earliest frame in that span whose spectral flux reaches half the span's largest;
- when an event ends, :meth:`~StreamingDetector.pop_finished` returns it again with
  ``offset_sample`` set to the start of its last window above ``off`` plus one hop (the
  next window, which no longer scores, has lost the sound).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from sed.dsp.frontend import StreamingLogMel, check_audio
from sed.errors import ModelError
from sed.models.backend import OnnxBackend
from sed.models.events import EventTracker, ScoreEvent
from sed.models.metadata import ClassThresholds, ModelMetadata
from sed.models.verifier import VerifiedScorer

#: Seconds of onset-strength history kept per stream (bounds how far back a span may reach).
_HISTORY_S = 8.0
#: How far the search span reaches before the rise window, s (sounds that build up; two hops
#: of the single-stage model, a third of a window of the two-stage one).
_SPAN_LEFT_S = 0.32
#: Longest search span handed to the arrival-time picker, s (the sound entered the rise window
#: from its right edge, so a long window is cut from the left).
_MAX_SPAN_S = 1.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class DetectorEvent:
    """One detected sound event on one stream.

    Attributes
    ----------
    stream_index : int
        Row of the pushed blocks.
    label : str
        A :class:`sed.wire.Label` value.
    score : float in [0, 1]
        Highest window score up to confirmation (finished events: over the whole event).
    onset_sample : int
        Best estimate of the sound's start, absolute sample index since reset.
    search_start_sample, search_stop_sample : int
        Span that contains the onset (for the arrival-time picker), absolute samples.
    confirm_sample : int
        Samples pushed when the event was confirmed (end of the confirming window).
    offset_sample : int or None
        Estimated end of the sound; ``None`` while the event is live.
    """

    stream_index: int
    label: str
    score: float
    onset_sample: int
    search_start_sample: int
    search_stop_sample: int
    confirm_sample: int
    offset_sample: int | None = None


def default_model_path() -> Path:
    """The ONNX model shipped inside the package."""
    return Path(__file__).resolve().parent / "sed_detector.onnx"


class StreamingDetector:
    """Detect events in a batch of audio streams, block by block.

    Build with :meth:`from_file`. Push float32 blocks ``(n_streams, n_samples)`` at
    :attr:`sample_rate_hz` of any length (including 0); each push returns the events it
    confirmed, always as a list.
    """

    def __init__(
        self,
        backend: OnnxBackend,
        *,
        n_streams: int = 1,
        thresholds: Mapping[str, float] | None = None,
        n_threads: int = 1,
    ) -> None:
        self._backend = backend
        self.metadata: ModelMetadata = backend.metadata
        meta = self.metadata
        self.n_streams = n_streams
        self._thresholds = _merge_thresholds(meta, thresholds, where=str(backend.path))
        self._frontend = StreamingLogMel(meta.frontend, n_streams=n_streams)
        self._tracker = EventTracker([self._thresholds[label] for label in meta.labels], n_streams=n_streams)
        self._features = np.zeros((n_streams, meta.frontend.n_mels, 4 * meta.window_frames), np.float32)
        self._max_span_samples = int(_MAX_SPAN_S * meta.sample_rate_hz)
        self._history_frames = int(_HISTORY_S * meta.sample_rate_hz / meta.frontend.hop_length_samples)
        # ring buffer of recent feature frames; frame k sits in column k % history_frames
        self._history = np.zeros((n_streams, meta.frontend.n_mels, self._history_frames), np.float32)
        # a two-stage model: the gate + YAMNet + head score windows instead of the log-mel network
        self._verifier = (
            VerifiedScorer(backend, n_streams=n_streams, n_threads=n_threads) if meta.verifier is not None else None
        )
        #: Called with every block of window scores ``(n_streams, n_labels, n_new)`` (benchmarks).
        self.on_scores: Callable[[np.ndarray], None] | None = None
        self.reset()

    @classmethod
    def from_file(
        cls,
        path: str | Path | None = None,
        *,
        n_streams: int = 1,
        thresholds: Mapping[str, float] | None = None,
        n_threads: int = 1,
    ) -> StreamingDetector:
        """Load a model file (``None``: the shipped model).

        Parameters
        ----------
        path : str, Path or None
        n_streams : int > 0
        thresholds : mapping label -> float in (0, 1], optional
            Overrides of the per-class ``on`` thresholds (``off`` is lowered to match when
            needed). Unknown labels raise :class:`ModelError`.
        n_threads : int >= 1
            onnxruntime intra-op threads.
        """
        if n_streams <= 0:
            raise ModelError(f"n_streams={n_streams}; expected > 0")
        backend = OnnxBackend(Path(path) if path is not None else default_model_path(), n_threads=n_threads)
        return cls(backend, n_streams=n_streams, thresholds=thresholds, n_threads=n_threads)

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate_hz(self) -> int:
        return self.metadata.sample_rate_hz

    @property
    def labels(self) -> tuple[str, ...]:
        return self.metadata.labels

    @property
    def model_version(self) -> str:
        return self.metadata.version

    @property
    def thresholds(self) -> dict[str, ClassThresholds]:
        """Per-class thresholds in force (model defaults merged with overrides)."""
        return dict(self._thresholds)

    @property
    def latency_samples(self) -> int:
        """Worst-case delay from a sound entering the audio to its window being scored.

        A sound is first wholly inside a window at most one hop after it starts; the event
        then needs ``min_hops`` windows. Add the push block length for the full delay.
        """
        min_hops = max(t.min_hops for t in self._thresholds.values())
        return min_hops * self.metadata.hop_samples

    @property
    def max_scores(self) -> np.ndarray:
        """Highest window score per stream and label since reset, ``(n_streams, n_labels)`` float32."""
        return self._max_scores.copy()

    @property
    def n_samples_pushed(self) -> int:
        """Samples pushed per stream since reset."""
        return self._frontend.n_samples_in + self._n_held

    @property
    def n_live_events(self) -> int:
        """Events confirmed and not yet finished, over all streams."""
        return len(self._live)

    # ------------------------------------------------------------------ streaming
    @property
    def wake_counts(self) -> tuple[int, int]:
        """Two-stage models: ``(windows scored by the gate, windows it woke)`` since reset."""
        if self._verifier is None:
            return (0, 0)
        return (self._verifier.n_windows, self._verifier.n_woken)

    def reset(self) -> None:
        """Forget all audio and live events; sample indices restart at 0."""
        self._frontend.reset()
        # a two-stage model scores once per window: blocks wait here until one completes, so
        # the front end runs once per window, not once per (short) block
        self._held: list[np.ndarray] = []
        self._n_held = 0
        if self._verifier is not None:
            self._verifier.reset()
        self._tracker.reset()
        self._states = self._backend.initial_states(self.n_streams)
        self._n_scores_out = 0
        self._n_feat = 0  # frames buffered, starting at frame self._feat_base
        self._feat_base = 0
        self._max_scores = np.zeros((self.n_streams, len(self.metadata.labels)), np.float32)
        self._finished: list[DetectorEvent] = []
        self._live: dict[tuple[int, int], DetectorEvent] = {}

    def push(self, block: np.ndarray) -> list[DetectorEvent]:
        """Add audio; return the events confirmed by it.

        Parameters
        ----------
        block : np.ndarray [shape=(n_streams, n_samples), dtype=float32]
            Samples in [-1, 1] at :attr:`sample_rate_hz`; ``n_samples`` may be 0.

        Returns
        -------
        list of DetectorEvent (``offset_sample`` is ``None``), in order of confirmation
        """
        check_audio(block, n_streams=self.n_streams, where="block")
        if self._verifier is not None:
            if block.shape[1]:
                self._held.append(np.array(block, dtype=np.float32, copy=True))
                self._n_held += block.shape[1]
            if self._frontend.n_samples_in + self._n_held < self._verifier.next_window_end_sample:
                return []
            audio = self._held[0] if len(self._held) == 1 else np.concatenate(self._held, axis=1)
            self._held, self._n_held = [], 0
            frames = self._frontend.push(audio)
            if frames.shape[2]:
                self._remember(frames)
            scores = self._verifier.push(audio, frames)
            return self._score(scores) if scores.shape[2] else []
        frames = self._frontend.push(block)
        if frames.shape[2] == 0:
            return []
        self._remember(frames)
        self._append(frames)
        meta = self.metadata
        # a streaming model needs one whole window first, then only new frames (it remembers
        # the rest); a stateless one always gets whole windows and the overlap stays here
        stateful = bool(meta.state_shapes)
        need = meta.hop_frames if stateful and self._n_scores_out > 0 else meta.window_frames
        if self._n_feat < need:
            return []
        n_scores = 1 + (self._n_feat - need) // meta.hop_frames
        used = need + (n_scores - 1) * meta.hop_frames
        scores, self._states = self._backend.run(self._features[:, :, :used], self._states)
        self._n_scores_out += n_scores
        consumed = used if stateful else n_scores * meta.hop_frames
        self._features[:, :, : self._n_feat - consumed] = self._features[:, :, consumed : self._n_feat]
        self._n_feat -= consumed
        self._feat_base += consumed
        return self._score(scores)

    def _score(self, scores: np.ndarray) -> list[DetectorEvent]:
        if self.on_scores is not None:
            self.on_scores(scores)
        np.maximum(self._max_scores, scores.max(axis=2), out=self._max_scores)
        return self._convert(self._tracker.push(scores))

    def flush(self) -> list[DetectorEvent]:
        """End of stream: push one window of silence, then finish every live event.

        Returns the events the padding confirmed; finished events go to :meth:`pop_finished`.
        Call :meth:`reset` before reusing the detector for a new signal.
        """
        pad = np.zeros((self.n_streams, self.metadata.window_samples), np.float32)
        events = self.push(pad)
        self.finish()
        return events

    def finish(self) -> None:
        """End every live event at the last window scored; they go to :meth:`pop_finished`."""
        self._convert(self._tracker.close())

    def pop_finished(self) -> list[DetectorEvent]:
        """Events that ended since the last call, with ``offset_sample`` and their peak score."""
        finished, self._finished = self._finished, []
        return finished

    # ------------------------------------------------------------------ internals
    def _append(self, frames: np.ndarray) -> None:
        needed = self._n_feat + frames.shape[2]
        if needed > self._features.shape[2]:
            grown = np.zeros((*self._features.shape[:2], max(needed, 2 * self._features.shape[2])), np.float32)
            grown[:, :, : self._n_feat] = self._features[:, :, : self._n_feat]
            self._features = grown
        self._features[:, :, self._n_feat : needed] = frames
        self._n_feat = needed

    def _remember(self, frames: np.ndarray) -> None:
        """Keep the last seconds of feature frames (for onset estimates) in the ring buffer."""
        n_new = frames.shape[2]
        first = self._frontend.n_frames_out - n_new  # absolute index of frames[..., 0]
        if n_new > self._history_frames:
            frames, first = frames[:, :, -self._history_frames :], first + n_new - self._history_frames
            n_new = self._history_frames
        columns = (first + np.arange(n_new)) % self._history_frames
        self._history[:, :, columns] = frames

    def _onset(self, stream: int, start_sample: int, stop_sample: int) -> int:
        """Onset estimate: the earliest frame in ``[start, stop - n_fft]`` whose spectral flux
        (mean positive dB rise across mel bands) reaches half the span's largest: the first of
        several shots, not the loudest."""
        p = self.metadata.frontend
        n_frames_total = self._frontend.n_frames_out
        first_kept = max(0, n_frames_total - self._history_frames)
        lo = max(first_kept + 1, -(-start_sample // p.hop_length_samples))
        hi = min(n_frames_total, (stop_sample - p.n_fft) // p.hop_length_samples + 1)
        if hi <= lo:
            return start_sample
        frames = self._history[stream][:, np.arange(lo - 1, hi) % self._history_frames]
        flux = np.maximum(np.diff(frames, axis=1), 0.0).mean(axis=0)
        best_frame = lo + int(np.argmax(flux >= 0.5 * flux.max()))
        return best_frame * p.hop_length_samples + p.n_fft // 2

    def _convert(self, changes: list[ScoreEvent]) -> list[DetectorEvent]:
        """Confirmations -> returned events; finishes -> :meth:`pop_finished` (order kept)."""
        meta = self.metadata
        out = []
        for ev in changes:
            if ev.last_index >= 0:
                self._finish(ev)
                continue
            stop = ev.rise_index * meta.hop_samples + meta.window_samples
            left = int(_SPAN_LEFT_S * meta.sample_rate_hz)
            start = max(0, ev.rise_index * meta.hop_samples - left, stop - self._max_span_samples)
            event = DetectorEvent(
                stream_index=ev.stream_index,
                label=meta.labels[ev.class_index],
                score=float(ev.peak_score),
                onset_sample=self._onset(ev.stream_index, start, stop),
                search_start_sample=start,
                search_stop_sample=stop,
                confirm_sample=ev.confirm_index * meta.hop_samples + meta.window_samples,
            )
            self._live[(ev.stream_index, ev.class_index)] = event
            out.append(event)
        out.sort(key=lambda e: (e.confirm_sample, e.stream_index, e.label))  # time order, whatever the block size
        return out

    def _finish(self, ev: ScoreEvent) -> None:
        live = self._live.pop((ev.stream_index, ev.class_index), None)
        if live is None:  # pragma: no cover - every finished event was confirmed first
            return
        offset = max(live.onset_sample + 1, ev.last_index * self.metadata.hop_samples + self.metadata.hop_samples)
        self._finished.append(dataclasses.replace(live, score=float(ev.peak_score), offset_sample=int(offset)))


def _merge_thresholds(
    meta: ModelMetadata, overrides: Mapping[str, float] | None, *, where: str
) -> dict[str, ClassThresholds]:
    merged = dict(meta.thresholds)
    for label, value in (overrides or {}).items():
        key = str(getattr(label, "value", label))
        if key not in merged:
            raise ModelError(f"{where}: threshold override for unknown label {key!r}; model labels {list(meta.labels)}")
        if not 0.0 < float(value) <= 1.0:
            raise ModelError(f"{where}: threshold override {key}={value}; expected 0 < value <= 1")
        base = merged[key]
        merged[key] = ClassThresholds(on=float(value), off=min(base.off, float(value)), min_hops=base.min_hops)
    return merged


__all__ = ["DetectorEvent", "StreamingDetector", "default_model_path"]
