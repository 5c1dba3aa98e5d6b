"""Association: which arrivals from different sensors belong to one sound.

A stream of arrivals from many sensors holds direct sounds, echoes (later, by a path that
differs on every sensor), unrelated impulses and several shots seconds apart. Only direct
arrivals of one source are *mutually consistent*: one point and one emission time explain
them all (the "near line-of-sight" pulse selection of ShotSpotter's tech note 098). So:

1. **Hypotheses (RANSAC).** For every pending arrival as a seed, the candidates are the
   arrivals of other sensors of the same class whose time difference is physically
   possible, ``|t_i - t_j| <= |s_i - s_j| / c + 2 tolerance``. The seed and two
   candidates fix x, y and the emission time exactly (up to two solutions of a
   quadratic; all pairs when there are few candidates, a quality-weighted sample
   otherwise). Each solution is scored by its *support*: the summed ``quality`` of the
   best arrival of each sensor within ``c * max_timing_error_s`` of its prediction.
2. **Echo priors.** The direct sound comes first: an arrival that follows a not much
   weaker arrival of its sensor within 0.3 s counts a quarter (in support, and in the
   group size checked against ``min_sensors``); among equal support, hypotheses whose
   members are not so preceded win.
3. **Consensus.** The best-supported hypothesis is refined with
   :func:`~sed.fusion.locate.locate`, its members (per sensor the earliest arrival within
   tolerance) recomputed until stable, then the worst member dropped until every residual
   is within tolerance. It is accepted if big enough, if enough of the live sensors
   around it took part (``min_participation``) and if it is not an echo of an accepted
   group (a mirror image emitting at the same time, or a later consistent set on that
   group's sensors only, smaller or located elsewhere). Accepted arrivals, and repeats of
   them by the same sensor within 2 ms (``Group.duplicates``), leave the pool; the search
   repeats. Shots seconds apart have different emission times: separate groups.

Three arrivals always fit, so groups of three (``min_sensors=3``) are only formed once no
four-sensor group is left, and only when their solution is unambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

from sed.errors import ConfigError
from sed.fusion.consensus import Group, Pool, Settings
from sed.fusion.locate import Arrival, speed_of_sound_m_per_s


def associate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    max_timing_error_s: float = 0.005,
    min_sensors: int = 3,
    source_z_m: float | None = None,
    min_participation: float = 0.0,
) -> tuple[list[Group], list[Arrival]]:
    """Partition arrivals into groups that one source explains.

    Parameters
    ----------
    arrivals : sequence of Arrival
        Any sensors, classes and times (a sensor may report several arrivals).
    temperature_c : float
    max_timing_error_s : float > 0
        Worst plausible error of one arrival time (picking, clock, the path bending round
        a building), s: an arrival is a member when its residual is within
        ``c * max_timing_error_s``.
    min_sensors : int >= 3
        Smallest group that is reported.
    source_z_m : float, optional
        Passed to :func:`~sed.fusion.locate.locate`.
    min_participation : float in [0, 1]
        Negative evidence: of the sensors that reported anything within 5 s and lie no
        farther from the solution than its farthest member (+10 %), at least this fraction
        must be members. A real shot is heard by most sensors around it; a chance
        alignment of echoes is not. 0 (default) switches the check off.

    Returns
    -------
    groups : list of Group
        Located groups, by emission time.
    leftover : list of Arrival
        Arrivals no group explains (echoes, unrelated pulses, too few sensors), by time.
    """
    if min_sensors < 3:
        raise ConfigError(f"associate: min_sensors={min_sensors}; expected >= 3")
    if not 0.0 <= min_participation <= 1.0:
        raise ConfigError(f"associate: min_participation={min_participation}; expected in [0, 1]")
    settings = Settings(
        tolerance_m=speed_of_sound_m_per_s(temperature_c) * max_timing_error_s,
        min_sensors=min_sensors,
        min_participation=min_participation,
    )
    groups: list[Group] = []
    leftover: list[Arrival] = []
    for label in sorted({a.label for a in arrivals}):
        pool = Pool([a for a in arrivals if a.label == label], temperature_c, source_z_m, settings)
        found, rest = pool.associate()
        groups += found
        leftover += rest
    groups.sort(key=lambda g: g.solution.origin_time_ns or 0)
    leftover.sort(key=lambda a: a.arrival_time_ns)
    return groups, leftover


__all__ = ["Group", "associate"]
