from __future__ import annotations

import numpy as np
import pytest

from sed.errors import ModelError
from sed.models.events import MERGE_GAP_HOPS, EventTracker
from sed.models.metadata import ClassThresholds


def _scores(*rows: list[float]) -> np.ndarray:
    return np.array(rows, np.float32)[None, :, :]


def test_event_is_confirmed_once_and_finishes_below_off() -> None:
    tracker = EventTracker([ClassThresholds(on=0.6, off=0.3)], n_streams=1)
    changes = tracker.push(_scores([0.1, 0.7, 0.9, 0.5, 0.2, 0.1, 0.1, 0.1]))
    confirmed = [c for c in changes if c.last_index < 0]
    finished = [c for c in changes if c.last_index >= 0]
    assert [(c.first_index, c.confirm_index) for c in confirmed] == [(1, 1)]
    assert [(c.first_index, c.last_index) for c in finished] == [(1, 3)]
    assert finished[0].peak_score == pytest.approx(0.9)


def test_min_hops_delays_confirmation_and_drops_short_blips() -> None:
    tracker = EventTracker([ClassThresholds(on=0.6, off=0.3, min_hops=2)], n_streams=1)
    blip = tracker.push(_scores([0.7, 0.1]))
    assert blip == []
    changes = tracker.push(_scores([0.7, 0.5, 0.8, 0.1, 0.1, 0.1, 0.1]))
    assert [(c.first_index, c.confirm_index, c.last_index) for c in changes] == [(2, 4, -1), (2, 4, 4)]


def test_short_dips_below_off_do_not_split_an_event() -> None:
    tracker = EventTracker([ClassThresholds(on=0.6, off=0.3)], n_streams=1)
    burst = [0.9, 0.1, 0.1, 0.9, 0.2, 0.9]  # three shots, dips of 2 and 1 scores
    changes = tracker.push(_scores(burst + [0.0] * MERGE_GAP_HOPS))
    assert [(c.first_index, c.last_index) for c in changes] == [(0, -1), (0, 5)]


def test_block_boundaries_do_not_change_events() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((2, 3, 200)).astype(np.float32) ** 3
    thresholds = [
        ClassThresholds(on=0.5, off=0.2),
        ClassThresholds(on=0.7, off=0.7),
        ClassThresholds(on=0.4, off=0.1, min_hops=3),
    ]
    whole = EventTracker(thresholds, n_streams=2)
    expected = sorted(whole.push(scores) + whole.close(), key=repr)
    pieces = EventTracker(thresholds, n_streams=2)
    got = []
    for start in range(0, 200, 7):
        got += pieces.push(scores[:, :, start : start + 7])
    got += pieces.close()
    assert sorted(got, key=repr) == expected


def test_close_finishes_live_events_at_the_last_score() -> None:
    tracker = EventTracker([ClassThresholds(on=0.5, off=0.4)], n_streams=1)
    tracker.push(_scores([0.1, 0.9, 0.9]))
    (done,) = tracker.close()
    assert (done.first_index, done.last_index) == (1, 2)
    assert tracker.close() == []


@pytest.mark.parametrize(("on", "off", "min_hops"), [(0.0, 0.0, 1), (0.5, 0.6, 1), (0.5, 0.4, 0), (1.2, 0.5, 1)])
def test_invalid_thresholds_raise(on: float, off: float, min_hops: int) -> None:
    with pytest.raises(ModelError):
        ClassThresholds(on=on, off=off, min_hops=min_hops)


def test_rise_index_marks_where_the_run_leading_to_the_event_began() -> None:
    tracker = EventTracker([ClassThresholds(on=0.8, off=0.5)], n_streams=1)
    changes = tracker.push(_scores([0.3, 0.01, 0.2, 0.5]))
    changes += tracker.push(_scores([0.3, 0.9, 0.9]))  # the run crosses a block boundary
    (confirmed,) = [c for c in changes if c.last_index < 0]
    assert (confirmed.rise_index, confirmed.first_index) == (2, 5)
