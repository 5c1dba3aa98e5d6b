"""Event-based metrics cross-checked against sed_eval on hand-made annotations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sed.metrics import Event, EventMetrics, average_precision, best_f1, precision_recall_curve

LABELS = ("gunshot", "scream", "glass_break")

# (reference, estimated) per file: near misses around the 0.5 s collar, a substitution,
# duplicates, an empty reference file and a file the system left empty.
FILES = {
    "a.wav": (
        [(1.0, 1.4, "gunshot"), (5.0, 6.5, "scream"), (9.0, 9.3, "glass_break")],
        [(1.3, 1.5, "gunshot"), (1.35, 1.6, "gunshot"), (5.6, 6.0, "scream"), (9.2, 9.5, "gunshot")],
    ),
    "b.wav": (
        [(0.5, 0.7, "gunshot"), (0.9, 1.1, "gunshot"), (3.0, 3.8, "glass_break")],
        [(0.6, 0.8, "gunshot"), (3.49, 3.9, "glass_break"), (7.0, 7.5, "scream")],
    ),
    "c.wav": ([], [(2.0, 2.2, "gunshot")]),
    "d.wav": ([(4.0, 5.0, "scream")], []),
    "e.wav": (
        [(1.0, 2.0, "scream"), (1.2, 1.4, "gunshot")],
        [(1.1, 1.9, "gunshot"), (1.3, 1.5, "scream"), (1.4, 1.6, "gunshot")],
    ),
}


def _ours() -> EventMetrics:
    metrics = EventMetrics(LABELS, collar_s=0.5)
    for name, (ref, est) in FILES.items():
        metrics.add_file([Event(name, *r) for r in ref], [Event(name, *e) for e in est])
    return metrics


def test_event_metrics_match_sed_eval() -> None:
    sed_eval = pytest.importorskip("sed_eval")
    theirs = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(LABELS), t_collar=0.5, evaluate_onset=True, evaluate_offset=False
    )
    for name, (ref, est) in FILES.items():
        theirs.evaluate(
            [{"filename": name, "event_onset": a, "event_offset": b, "event_label": c} for a, b, c in ref],
            [{"filename": name, "event_onset": a, "event_offset": b, "event_label": c} for a, b, c in est],
        )
    ours = _ours()
    for label in LABELS:
        expected = theirs.class_wise_f_measure(label)
        got = ours.class_wise[label]
        assert got.f1 == pytest.approx(expected["f_measure"])
        assert got.precision == pytest.approx(expected["precision"])
        assert got.recall == pytest.approx(expected["recall"])
        expected_er = theirs.class_wise_error_rate(label)["error_rate"]
        assert got.error_rate == pytest.approx(expected_er) or (math.isnan(got.error_rate) and math.isnan(expected_er))
    overall = theirs.results_overall_metrics()
    assert ours.overall.f1 == pytest.approx(overall["f_measure"]["f_measure"])
    assert ours.overall_error_rate == pytest.approx(overall["error_rate"]["error_rate"])
    assert ours.n_substitutions == theirs.overall["Nsubs"]


def test_collar_is_inclusive_and_offsets_are_ignored() -> None:
    metrics = EventMetrics(("gunshot",), collar_s=0.5)
    metrics.add_file([Event("x", 1.0, 1.1, "gunshot")], [Event("x", 1.5, 9.0, "gunshot")])
    metrics.add_file([Event("y", 1.0, 1.1, "gunshot")], [Event("y", 1.51, 1.6, "gunshot")])
    assert (metrics.overall.n_tp, metrics.overall.n_sys, metrics.overall.n_ref) == (1, 2, 2)


def test_average_precision_matches_sklearn(rng: np.random.Generator) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    scores = np.round(rng.random(200), 2)  # ties included
    positive = rng.random(200) < 0.3
    assert average_precision(scores, positive) == pytest.approx(
        sklearn_metrics.average_precision_score(positive, scores)
    )


def test_best_f1_finds_the_optimal_threshold() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    positive = np.array([True, True, False, True, False])
    f1, threshold = best_f1(scores, positive)
    assert f1 == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert threshold == pytest.approx(0.6)
    precision, recall, thresholds = precision_recall_curve(scores, positive)
    assert list(thresholds) == [0.9, 0.8, 0.7, 0.6, 0.2]
    assert recall[-1] == 1.0 and precision[0] == 1.0
