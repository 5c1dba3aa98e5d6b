"""Window scores -> events: per-class hysteresis with a minimum duration.

Works in *score indices* (score ``k`` is the model's window starting at feature frame
``k * hop_frames``); the detector turns indices into sample positions. Each (stream,
class) pair is a small state machine:

- **idle** → **candidate** when a score reaches ``on``;
- **candidate** → **active** (the event is *confirmed* and reported once) when
  ``min_hops`` scores have reached ``on`` without a score below ``off`` in between;
  a score below ``off`` first drops the candidate;
- **active** → **idle** after :data:`MERGE_GAP_HOPS` consecutive scores below ``off``
  (the event is *finished*; its last score is the last one at or above ``off``).

Only pairs with a score at or above ``off`` or a live state are visited, so the common
case (nothing happening on any stream) costs one vectorised comparison per block.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sed.models.metadata import ClassThresholds

_IDLE, _CANDIDATE, _ACTIVE = 0, 1, 2
#: Furthest back (in scores) a rise may lie before the first score >= on.
_MAX_RISE_HOPS = 12
#: A run of scores at or above this fraction of ``on`` leading up to an event marks where the
#: sound entered the window (scores between shots of a burst may dip below ``off``).
RISE_FRACTION = 0.1
#: An active event ends after this many consecutive scores below ``off`` (shorter dips, e.g.
#: between the shots of a burst, do not split it).
MERGE_GAP_HOPS = 4


@dataclasses.dataclass(frozen=True)
class ScoreEvent:
    """An event in score indices.

    ``first_index`` is the first score >= ``on``; ``confirm_index`` the score that
    confirmed it; ``last_index`` the last score >= ``off`` (finished events only, else -1);
    ``peak_score`` the highest score up to confirmation (confirmed) or over the event
    (finished); ``rise_index`` the first score of the unbroken run >= ``RISE_FRACTION * on``
    that led to ``first_index`` (where the sound most likely entered the window).
    """

    stream_index: int
    class_index: int
    first_index: int
    confirm_index: int
    last_index: int
    peak_score: float
    rise_index: int = -1


class EventTracker:
    """Hysteresis over score blocks for ``n_streams`` streams × ``len(thresholds)`` classes.

    Parameters
    ----------
    thresholds : sequence of ClassThresholds, one per model output row
    n_streams : int > 0
    """

    def __init__(self, thresholds: list[ClassThresholds], *, n_streams: int) -> None:
        self.thresholds = list(thresholds)
        self.n_streams = n_streams
        self._on = np.array([t.on for t in thresholds], dtype=np.float32)[None, :, None]
        self._off = np.array([t.off for t in thresholds], dtype=np.float32)[None, :, None]
        self._rise_level = [RISE_FRACTION * t.on for t in thresholds]
        self._visit = np.minimum(self._off, RISE_FRACTION * self._on)
        self.reset()

    def reset(self) -> None:
        shape = (self.n_streams, len(self.thresholds))
        self._state = np.zeros(shape, dtype=np.int8)
        self._first = np.zeros(shape, dtype=np.int64)
        self._rise = np.full(shape, -1, dtype=np.int64)  # start of the current rising run, -1: none
        self._below = np.zeros(shape, dtype=np.int64)  # consecutive scores < off of an active event
        self._confirm = np.zeros(shape, dtype=np.int64)
        self._n_on = np.zeros(shape, dtype=np.int64)
        self._peak = np.zeros(shape, dtype=np.float32)
        self.n_scores_seen = 0

    def push(self, scores: np.ndarray) -> list[ScoreEvent]:
        """Advance over new scores.

        Parameters
        ----------
        scores : np.ndarray [shape=(n_streams, n_classes, n_new), dtype=float32]

        Returns
        -------
        list of ScoreEvent
            Confirmations (``last_index == -1``, each event reported once) and finishes
            (``last_index >= 0``), in order of occurrence for each (stream, class).
        """
        base = self.n_scores_seen
        self.n_scores_seen += scores.shape[2]
        out: list[ScoreEvent] = []
        if scores.shape[2] == 0:
            return out
        busy = (scores >= self._visit).any(axis=2) | (self._state != _IDLE)
        self._rise[~busy] = -1  # a whole block below the rise level breaks any run
        for s, c in zip(*np.nonzero(busy), strict=True):
            self._advance(int(s), int(c), scores[s, c], base, out)
        return out

    def _advance(self, s: int, c: int, row: np.ndarray, base: int, out: list[ScoreEvent]) -> None:
        th = self.thresholds[c]
        rise_level = self._rise_level[c]
        state, first, n_on, peak = self._state[s, c], self._first[s, c], self._n_on[s, c], float(self._peak[s, c])
        rise, below = int(self._rise[s, c]), int(self._below[s, c])
        for offset, value in enumerate(row.tolist()):
            k = base + offset
            if value < rise_level:
                rise = -1
            elif rise < 0:
                rise = k
            if state == _IDLE:
                if value >= th.on:
                    state, first, n_on, peak = _CANDIDATE, k, 1, value
                else:
                    continue
            elif value < th.off:
                if state == _ACTIVE:
                    below += 1
                    if below < MERGE_GAP_HOPS:  # a short dip (between shots of a burst) keeps the event
                        continue
                    out.append(ScoreEvent(s, c, int(first), int(self._confirm[s, c]), k - below, peak))
                state, below = _IDLE, 0
                continue
            else:
                below = 0
                peak = max(peak, value)
                n_on += value >= th.on
            if state == _CANDIDATE and n_on >= th.min_hops:
                state = _ACTIVE
                self._confirm[s, c] = k
                out.append(ScoreEvent(s, c, int(first), k, -1, peak, rise_index=max(rise, int(first) - _MAX_RISE_HOPS)))
        self._state[s, c], self._first[s, c], self._n_on[s, c], self._peak[s, c] = state, first, n_on, peak
        self._rise[s, c], self._below[s, c] = rise, below

    def close(self) -> list[ScoreEvent]:
        """Finish every active event at the last score seen (end of stream); then reset."""
        finished = [
            ScoreEvent(
                int(s),
                int(c),
                int(self._first[s, c]),
                int(self._confirm[s, c]),
                self.n_scores_seen - 1 - int(self._below[s, c]),
                float(self._peak[s, c]),
            )
            for s, c in zip(*np.nonzero(self._state == _ACTIVE), strict=True)
        ]
        self.reset()
        return finished


__all__ = ["EventTracker", "ScoreEvent"]
