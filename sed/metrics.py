"""Detection metrics: clip-level precision/recall/F1/AP and event-based F1/ER.

Event-based metrics follow sed_eval's ``EventBasedMetrics`` with ``evaluate_onset=True,
evaluate_offset=False`` (the DCASE 2017 task 2 convention, ``t_collar_s = 0.5``) and its
optimal (maximum bipartite) matching: an estimate matches a reference of the same label
whose onset is within the collar; class-wise ``ER = (FN + FP) / N_ref``; overall
``ER = (S + D + I) / N_ref`` where a substitution is an unmatched estimate within the
collar of an unmatched reference of another label (counted in sed_eval's order).
Tested against sed_eval itself on hand-made annotations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching


@dataclasses.dataclass(frozen=True)
class Event:
    """An annotated or detected event in one file, seconds from the file start."""

    file: str
    onset_s: float
    offset_s: float
    label: str


@dataclasses.dataclass
class Counts:
    n_ref: int = 0
    n_sys: int = 0
    n_tp: int = 0

    @property
    def precision(self) -> float:
        return self.n_tp / self.n_sys if self.n_sys else 0.0

    @property
    def recall(self) -> float:
        return self.n_tp / self.n_ref if self.n_ref else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.n_tp / (self.n_ref + self.n_sys) if self.n_ref + self.n_sys else 0.0

    @property
    def error_rate(self) -> float:
        """(deletions + insertions) / N_ref (class-wise; no substitutions)."""
        if not self.n_ref:
            return float("nan")
        return ((self.n_ref - self.n_tp) + (self.n_sys - self.n_tp)) / self.n_ref


def _match(ref: Sequence[Event], est: Sequence[Event], collar_s: float, *, same_label: bool) -> list[tuple[int, int]]:
    """Maximum matching of (ref, est) pairs with onsets within the collar."""
    if not ref or not est:
        return []
    ref_on = np.array([e.onset_s for e in ref])[:, None]
    est_on = np.array([e.onset_s for e in est])[None, :]
    hits = np.abs(ref_on - est_on) <= collar_s
    if same_label:
        hits &= np.array([e.label for e in ref])[:, None] == np.array([e.label for e in est])[None, :]
    if not hits.any():
        return []
    matched = maximum_bipartite_matching(csr_matrix(hits), perm_type="column")
    return [(j, int(i)) for j, i in enumerate(matched) if i >= 0]


@dataclasses.dataclass
class EventMetrics:
    """Accumulated event-based metrics over files (onset-only, ``collar_s`` seconds)."""

    labels: tuple[str, ...]
    collar_s: float = 0.5
    class_wise: dict[str, Counts] = dataclasses.field(default_factory=dict)
    overall: Counts = dataclasses.field(default_factory=Counts)
    n_substitutions: int = 0

    def __post_init__(self) -> None:
        self.class_wise = {label: Counts() for label in self.labels}

    def add_file(self, reference: Iterable[Event], estimated: Iterable[Event]) -> None:
        """Score one file's events (all events of both lists must belong to that file)."""
        ref, est = list(reference), list(estimated)
        pairs = _match(ref, est, self.collar_s, same_label=True)
        self.overall.n_ref += len(ref)
        self.overall.n_sys += len(est)
        self.overall.n_tp += len(pairs)
        ref_left = sorted(set(range(len(ref))) - {j for j, _ in pairs})
        est_left = sorted(set(range(len(est))) - {i for _, i in pairs})
        counted: set[int] = set()
        for j in ref_left:
            for i in est_left:
                if i not in counted and abs(ref[j].onset_s - est[i].onset_s) <= self.collar_s:
                    counted.add(i)
                    self.n_substitutions += 1
                    break
        for label in self.labels:
            ref_c = [e for e in ref if e.label == label]
            est_c = [e for e in est if e.label == label]
            counts = self.class_wise[label]
            counts.n_ref += len(ref_c)
            counts.n_sys += len(est_c)
            counts.n_tp += len(_match(ref_c, est_c, self.collar_s, same_label=False))

    @property
    def overall_error_rate(self) -> float:
        o = self.overall
        if not o.n_ref:
            return float("nan")
        deletions = o.n_ref - o.n_tp - self.n_substitutions
        insertions = o.n_sys - o.n_tp - self.n_substitutions
        return (self.n_substitutions + deletions + insertions) / o.n_ref


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision–recall step curve (sklearn's ``average_precision_score``).

    Parameters
    ----------
    scores : np.ndarray [shape=(n,)], higher = more confident
    positive : np.ndarray [shape=(n,), dtype=bool]
    """
    n_pos = int(np.sum(positive))
    if n_pos == 0:
        return float("nan")
    precision, recall, _ = precision_recall_curve(scores, positive)
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def precision_recall_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score used as threshold (``score >= t``), descending."""
    order = np.argsort(-scores, kind="mergesort")
    s, pos = scores[order], positive[order].astype(np.int64)
    last_of_run = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(pos)[last_of_run]
    n_sel = last_of_run + 1
    precision = tp / n_sel
    recall = tp / max(1, int(pos.sum()))
    return precision, recall, s[last_of_run]


def best_f1(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Highest F1 over all thresholds, and that threshold (tuned on the data itself)."""
    precision, recall, thresholds = precision_recall_curve(scores, positive)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    if f1.size == 0:
        return 0.0, 1.0
    k = int(np.argmax(f1))
    return float(f1[k]), float(thresholds[k])


def decision_counts(decided: np.ndarray, positive: np.ndarray) -> Counts:
    """Clip-level counts: ``decided`` and ``positive`` are boolean per clip."""
    return Counts(n_ref=int(positive.sum()), n_sys=int(decided.sum()), n_tp=int((decided & positive).sum()))


__all__ = [
    "Counts",
    "Event",
    "EventMetrics",
    "average_precision",
    "best_f1",
    "decision_counts",
    "precision_recall_curve",
]
