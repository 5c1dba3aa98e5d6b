"""Association: which arrivals from different sensors belong to one sound.

Two arrivals can come from one source only if their time difference is physically
possible: ``|t_i - t_j| <= |s_i - s_j| / c + tolerance``. Groups are grown from the
earliest unassigned arrival of each class, at most one arrival per sensor, and pruned
until the TDOA solution explains every member within the timing tolerance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sed.fusion.locate import NS_PER_S, Arrival, Solution, SolveStatus, locate, speed_of_sound_m_per_s


@dataclasses.dataclass(frozen=True, kw_only=True)
class Group:
    """Arrivals explained by one source, with the solution that explains them."""

    label: str
    arrivals: tuple[Arrival, ...]
    solution: Solution


def associate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    max_timing_error_s: float = 0.005,
    min_sensors: int = 3,
    source_z_m: float | None = None,
) -> tuple[list[Group], list[Arrival]]:
    """Partition arrivals into groups that one source explains.

    Parameters
    ----------
    arrivals : sequence of Arrival
        Any sensors, classes and times.
    temperature_c : float
    max_timing_error_s : float > 0
        Worst plausible timing error of one arrival, s; sets the consistency tolerance.
    min_sensors : int >= 3
        Smallest group that is located.
    source_z_m : float, optional
        Passed to :func:`~sed.fusion.locate.locate`.

    Returns
    -------
    groups : list of Group
        Located groups, earliest first.
    leftover : list of Arrival
        Arrivals no group explains (echoes, unrelated pulses, too few sensors).
    """
    c = speed_of_sound_m_per_s(temperature_c)
    tolerance_m = 2 * c * max_timing_error_s
    pending = sorted(arrivals, key=lambda a: a.arrival_time_ns)
    groups: list[Group] = []
    leftover: list[Arrival] = []
    while pending:
        seed = pending[0]
        members = [seed]
        for candidate in pending[1:]:
            if candidate.label != seed.label or any(m.sensor_id == candidate.sensor_id for m in members):
                continue
            if all(_compatible(m, candidate, c, tolerance_m) for m in members):
                members.append(candidate)
        group = _prune(members, c, tolerance_m, temperature_c, min_sensors, source_z_m)
        if group is None:
            leftover.append(seed)
            pending.remove(seed)
            continue
        groups.append(group)
        used = {id(a) for a in group.arrivals}
        pending = [a for a in pending if id(a) not in used]
    return groups, leftover


def _compatible(a: Arrival, b: Arrival, c: float, tolerance_m: float) -> bool:
    baseline_m = float(np.linalg.norm(np.subtract(a.position_m, b.position_m)))
    return abs(a.arrival_time_ns - b.arrival_time_ns) / NS_PER_S * c <= baseline_m + tolerance_m


def _prune(
    members: list[Arrival],
    c: float,
    tolerance_m: float,
    temperature_c: float,
    min_sensors: int,
    source_z_m: float | None,
) -> Group | None:
    """Drop the worst-fitting member until the solution explains all, or too few remain."""
    members = list(members)
    while len(members) >= min_sensors:
        solution = locate(members, temperature_c=temperature_c, source_z_m=source_z_m)
        if solution.status is not SolveStatus.LOCATED:
            return None
        worst = int(np.argmax(np.abs(solution.residuals_m)))
        if abs(solution.residuals_m[worst]) <= tolerance_m:
            return Group(label=members[0].label, arrivals=tuple(members), solution=solution)
        if worst == 0:  # the seed itself does not fit: it is not part of this group
            return None
        members.pop(worst)
    return None


__all__ = ["Group", "associate"]
