"""Scoring rules of ``sed bench localize``: which of our groups is which fired round."""

from __future__ import annotations

import numpy as np

from sed.bench.localize_score import MATCH_WINDOW_NS, ReferenceShot, match
from sed.fusion.associate import Group
from sed.fusion.locate import Solution, SolveStatus

T0_NS = 1_545_187_124_000_000_000


def group(origin_time_ns: int) -> Group:
    solution = Solution(
        status=SolveStatus.LOCATED, position_m=(0.0, 0.0, 0.0), origin_time_ns=origin_time_ns,
        covariance_m2=np.eye(2), uncertainty_m=1.0, residuals_m=np.zeros(4), sensor_ids=("a", "b", "c", "d"),
    )  # fmt: skip
    return Group(label="gunshot", arrivals=(), solution=solution)


def shot(index: int, origin_time_ns: int | None) -> ReferenceShot:
    return ReferenceShot(index=index, origin_time_ns=origin_time_ns, pulse_keys=frozenset())


def test_groups_pair_with_rounds_by_emission_time_nearest_first() -> None:
    shots = [shot(0, T0_NS), shot(1, T0_NS + 600_000_000)]
    early, late, stray = group(T0_NS + 5_000_000), group(T0_NS + 590_000_000), group(T0_NS + 3_000_000_000)
    matched, unmatched = match([stray, late, early], shots)
    assert matched == {0: early, 1: late}
    assert unmatched == [stray]
    too_far = group(T0_NS + MATCH_WINDOW_NS + 1)
    assert match([too_far], [shot(0, T0_NS)]) == ({}, [too_far])


def test_a_round_without_a_reference_takes_the_group_in_its_cadence_slot() -> None:
    # Tuples for rounds fired at 0 s and 0.6 s; the third round has none. A group 0.7 s
    # before the first is in the slot one spacing before (within half a spacing); a group
    # 2 s later is in no slot.
    shots = [shot(0, T0_NS), shot(1, T0_NS + 600_000_000), shot(2, None)]
    first, second = group(T0_NS + 1_000_000), group(T0_NS + 601_000_000)
    before, far = group(T0_NS - 700_000_000), group(T0_NS + 2_600_000_000)
    matched, unmatched = match([far, second, before, first], shots)
    assert matched == {0: first, 1: second, 2: before}
    assert unmatched == [far]
    matched, unmatched = match([far, second, first], shots)
    assert 2 not in matched and unmatched == [far]
